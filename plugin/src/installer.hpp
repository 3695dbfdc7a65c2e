// Building one venv: `python -m venv --system-site-packages --without-pip`,
// then the base interpreter's pip module run by the venv's interpreter, in an
// isolated child, for one resolve (`pip install --dry-run --report`) from a
// requirements file the service wrote itself; the caps are checked on what it
// chose; then exactly those distributions, by sha256, from the store of
// installed distributions, where pip downloads and the service unpacks what
// is missing, and the venv is linked from it (dist_install.hpp). After pip,
// no interpreter of the venv runs: what was installed is read from the
// dist-info directories, and the venv is checked against what venv created
// (dist_info.hpp). With a pip older than 22.2 (no --dry-run), pip installs.
//
// What pip says goes whole to the operator's build log; the user is shown it
// condensed: a line per package, a progress line while pip is quiet, and a
// failure turned into problems with the user's requirements
// (pip_messages.hpp).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
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

// Words of a fault of the service (the index, the network, the disk), not of
// the requirements, in a line of pip's or an error of our own.
bool service_trouble(std::string_view line);

struct BuildRequest {
  std::string key;
  std::vector<Requirement> requirements;
  InterpreterFacts python;
  Deadline deadline;
  std::string deadline_reason;  // e.g. "caps.install_timeout_s (600 s)"
};

struct BuildResult {
  bool ok = false;
  std::string failure;  // why, when !ok: in full, for the operator's log
  // why, in a user's words, when shorter than `failure` (problems: their
  // subjects only, the problems themselves are shown on the user's lines)
  std::string summary;
  // What pip could not install, per requirement (requirements.hpp).
  std::vector<RequirementProblem> problems;
  // The failure is the service's (the index unreachable, a full disk, a
  // permission, a process killed from outside), not the requirements': it is
  // not remembered against them, and the user is told so.
  bool service_fault = false;
  Record record;  // when ok: written to the store by the caller
};

// Runs pip's resolve, given pip's own arguments (`install ... --dry-run
// ...`), in a pip started ahead of the build (pip_spare.hpp); nullopt when
// none was ready and nothing ran: the installer then starts pip itself.
// `note` gets the operator's lines about it.
using ResolveAhead = std::function<std::optional<RunOutcome>(
    const InterpreterFacts& python, const std::vector<std::string>& pip_args, Deadline,
    const LineSink& on_line, const PollHook&, const LineSink& note)>;

class Installer {
 public:
  Installer(const Config& config, const Store& store, ProcessRunner runner,
            ResolveAhead resolve_ahead = {})
      : config_(config),
        store_(store),
        runner_(std::move(runner)),
        resolve_ahead_(std::move(resolve_ahead)) {}

  // Builds into store.env_dir(key), which must not exist. Streams progress
  // lines for the user (and the operator) to `log`, and everything pip and
  // venv print to `detail` (the operator's build log; may be empty). On
  // failure the partial venv is removed.
  BuildResult build(const BuildRequest& request, const LineSink& log,
                    const LineSink& detail = {}) const;

 private:
  const Config& config_;
  const Store& store_;
  ProcessRunner runner_;
  ResolveAhead resolve_ahead_;
};

}  // namespace clsi::venv
