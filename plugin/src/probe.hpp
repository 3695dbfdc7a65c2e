// What the base interpreter is, learned once per interpreter file and kept in
// the store, so that a cache hit runs no process.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include <sys/types.h>

#include "expected.hpp"
#include "process_runner.hpp"

namespace clsi::venv {

// Identity of the interpreter file: a change means the probe is stale.
struct InterpreterIdentity {
  std::string real_path;
  std::uint64_t dev = 0, ino = 0;
  std::int64_t size = 0, mtime_ns = 0;
  [[nodiscard]] std::string fingerprint() const;
};

struct InterpreterFacts {
  std::string real_path;
  std::string version;        // full sys.version plus implementation and machine
  std::string version_short;  // "3.11"
  std::string pip_version;    // "" when the base has no importable pip
  InterpreterIdentity identity;
};

Expected<InterpreterIdentity> identify_interpreter(const std::string& path);

// Whether pip `pip_version` ("23.0.1") can resolve without installing
// (`install --dry-run --report`, since 22.2); "" (no pip) cannot.
bool pip_resolves_first(const std::string& pip_version);

// Caches facts in memory and in `probe_dir` (one small file per fingerprint).
class InterpreterProbe {
 public:
  // The build service's probe: runs the interpreter when it must and keeps
  // what it learned in probe_dir.
  InterpreterProbe(std::string probe_dir, std::string tmp_dir, ProcessRunner runner)
      : probe_dir_(std::move(probe_dir)),
        tmp_dir_(std::move(tmp_dir)),
        runner_(std::move(runner)) {}

  // A compile host's view: only reads probe files the store's owner wrote;
  // runs nothing and writes nothing. Without such a file, facts() fails and
  // the caller asks the build service.
  static InterpreterProbe reader(std::string probe_dir, uid_t owner) {
    InterpreterProbe p(std::move(probe_dir), {}, {});
    p.read_only_ = true;
    p.owner_ = owner;
    return p;
  }
  InterpreterProbe(InterpreterProbe&& other) noexcept
      : probe_dir_(std::move(other.probe_dir_)),
        tmp_dir_(std::move(other.tmp_dir_)),
        runner_(std::move(other.runner_)),
        read_only_(other.read_only_),
        owner_(other.owner_) {}

  // `probed` is set when a process had to run.
  Expected<InterpreterFacts> facts(const std::string& base_python, bool* probed = nullptr);

 private:
  Expected<InterpreterFacts> run_probe(const std::string& base_python,
                                       const InterpreterIdentity& id);
  std::string probe_dir_;
  std::string tmp_dir_;
  ProcessRunner runner_;
  bool read_only_ = false;
  uid_t owner_ = 0;
  std::mutex mu_;
  std::map<std::string, InterpreterFacts> memo_;
};

}  // namespace clsi::venv
