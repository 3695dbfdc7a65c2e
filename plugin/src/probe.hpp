// What the base interpreter is, learned once per interpreter file and kept in
// the store, so that a cache hit runs no process.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

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

// Caches facts in memory and in `probe_dir` (one small file per fingerprint).
class InterpreterProbe {
 public:
  InterpreterProbe(std::string probe_dir, std::string tmp_dir, ProcessRunner runner)
      : probe_dir_(std::move(probe_dir)),
        tmp_dir_(std::move(tmp_dir)),
        runner_(std::move(runner)) {}

  // `probed` is set when a process had to run.
  Expected<InterpreterFacts> facts(const std::string& base_python, bool* probed = nullptr);

 private:
  Expected<InterpreterFacts> run_probe(const std::string& base_python,
                                       const InterpreterIdentity& id);
  std::string probe_dir_;
  std::string tmp_dir_;
  ProcessRunner runner_;
  std::mutex mu_;
  std::map<std::string, InterpreterFacts> memo_;
};

}  // namespace clsi::venv
