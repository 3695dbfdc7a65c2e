// Building one venv: `python -m venv --system-site-packages --without-pip`,
// then the base interpreter's pip module run by the venv's interpreter, from
// a requirements file the plugin wrote itself, in an isolated child. After
// pip, no interpreter of the venv runs: what was installed is read from the
// dist-info directories, and the venv is checked against what venv created
// (dist_info.hpp).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "config.hpp"
#include "probe.hpp"
#include "process_runner.hpp"
#include "requirements.hpp"
#include "store.hpp"

namespace clsi::venv {

// The plugin's own lines in output.log start with this; pip's are indented.
inline std::string note(std::string_view text) {
  return "[python-venv] " + std::string(text);
}

struct BuildRequest {
  std::string key;
  std::vector<Requirement> requirements;
  InterpreterFacts python;
  Deadline deadline;
  std::string deadline_reason;  // e.g. "caps.install_timeout_s (600 s)"
};

struct BuildResult {
  bool ok = false;
  std::string failure;  // why, in a user's words, when !ok
  // The failure is the service's (the index unreachable, a full disk, a
  // permission, a process killed from outside), not the requirements': it is
  // not remembered against them, and the user is told so.
  bool service_fault = false;
  Record record;  // when ok: written to the store by the caller
};

class Installer {
 public:
  Installer(const Config& config, const Store& store, ProcessRunner runner)
      : config_(config), store_(store), runner_(std::move(runner)) {}

  // Builds into store.env_dir(key), which must not exist. Streams progress
  // lines to `log`. On failure the partial venv is removed.
  BuildResult build(const BuildRequest& request, const LineSink& log) const;

 private:
  const Config& config_;
  const Store& store_;
  ProcessRunner runner_;
};

}  // namespace clsi::venv
