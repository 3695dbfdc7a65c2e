// The install half of a build, once pip has resolved: the distributions the
// store already holds are taken as they are; the others, downloaded by pip
// (exactly the resolved files, each checked against its sha256), are unpacked
// by our own code (wheel_archive.hpp), byte-compiled once by the base
// interpreter's compileall, and put in the store (dist_store.hpp); then the
// venv is populated from the store (venv_linker.hpp). No code of a wheel
// runs.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "dist_store.hpp"
#include "isolation.hpp"
#include "pip_report.hpp"
#include "probe.hpp"
#include "process_runner.hpp"
#include "store.hpp"
#include "venv_linker.hpp"

namespace clsi::venv {

struct InstallError {
  std::string why;
  bool service_fault = false;  // the store's disk, a process killed: not the requirements'
};

class DistInstaller {
 public:
  struct Setup {
    const Config* config = nullptr;
    const Store* store = nullptr;
    ProcessRunner runner;
    InterpreterFacts python;
    Deadline deadline;
    std::string deadline_reason;
    SpawnOptions base;  // the isolated environment of the build's children
    LineSink tell;      // lines for the user and the operator
    LineSink detail;    // what children print (the operator's build log)
    PollHook tick;      // called while a child runs (progress lines)
  };
  DistInstaller(Setup setup, std::vector<ResolvedDistribution> chosen);

  // Which of the chosen distributions the store lacks, in the resolve's order.
  [[nodiscard]] const std::vector<ResolvedDistribution>& missing() const { return missing_; }

  // Takes the missing ones from `fetched` (sha256 -> a copy whose bytes were
  // checked as it was made: local_wheel.hpp) and from `wheels_dir` (pip
  // download's, found by their sha256): unpacks, compiles and stores each.
  // `staging`: a directory of the build's own, on the store's filesystem.
  std::optional<InstallError> add_downloaded(const std::string& wheels_dir,
                                             const std::string& staging,
                                             const std::map<std::string, std::string>& fetched);

  // Populates the venv with every chosen distribution.
  std::optional<InstallError> link(const std::string& venv, const std::string& site_packages);

  [[nodiscard]] const LinkStats& link_stats() const { return stats_; }
  // The sha256 of every distribution the venv has: the record's `dists`.
  [[nodiscard]] std::vector<std::string> dist_hashes() const;

 private:
  Setup s_;
  DistStore dists_;
  std::vector<ResolvedDistribution> chosen_;
  std::vector<ResolvedDistribution> missing_;
  std::map<std::string, DistLease> held_;  // by sha256
  LinkStats stats_;
};

}  // namespace clsi::venv
