// The commands of clsi-venvs, one file each (cmd_*.cpp); main() in
// clsi_venvs.cpp parses the command line and calls one of them.
//
// A command returns kExitDone when it did what was asked. When it did not,
// it throws NotDone (or any std::exception) with what did not happen, and
// main() says so on stderr (and, with --json, as {"command", "ok": false,
// "error"} on stdout) and exits kExitNotDone; a command that reports a
// partial result itself (gc, with --json) returns kExitNotDone.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "config.hpp"

namespace clsi::venv::admin {

inline constexpr int kExitDone = 0;     // what was asked for happened
inline constexpr int kExitNotDone = 1;  // something asked for did not happen
inline constexpr int kExitUsage = 2;    // the command line or the configuration is wrong

// What did not happen; `details`: lines that say more (refused requirement
// lines, say), printed after it.
struct NotDone : std::runtime_error {
  explicit NotDone(const std::string& what, std::vector<std::string> more = {})
      : std::runtime_error(what), details(std::move(more)) {}
  std::vector<std::string> details;
};

// Options every command takes.
struct Common {
  std::string config;     // --config
  std::string venvs_dir;  // --venvs-dir: overrides venvs_dir (and PYTHON_VENVS_DIR)
  bool json = false;      // --json
};

struct GcArgs {
  long long max_total_mb = -1;  // -1: eviction.max_total_mb
  bool dry_run = false;
  std::string unused_for;  // --unused-for DURATION; "": eviction.unused_for_s
};

struct RewarmArgs {
  std::string used_within = "7d";  // --used-within DURATION
};

struct StatsArgs {
  bool prometheus = false;
};

int list(const Config& config, const Common& common);
int gc(const Config& config, const Common& common, const GcArgs& args);
int warm(const Config& config, const Common& common, const std::string& file);
int remove(const Config& config, const Common& common, const std::string& key);
int stats(const Config& config, const Common& common, const StatsArgs& args);
int serve(const Config& config, const Common& common);
int rewarm(const Config& config, const Common& common, const RewarmArgs& args);

}  // namespace clsi::venv::admin
