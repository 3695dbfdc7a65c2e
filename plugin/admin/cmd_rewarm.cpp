// clsi-venvs rewarm: after an image upgrade, rebuilds through the service,
// ahead of the users, every venv used within --used-within (rewarm.hpp).
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "admin_output.hpp"
#include "commands.hpp"
#include "eviction.hpp"
#include "rewarm.hpp"

namespace clsi::venv::admin {

int rewarm(const Config& config, const Common& common, const RewarmArgs& args) {
  auto window = parse_duration(args.used_within);
  if (!window) throw NotDone(window.error());
  if (!common.json) return run_rewarm(config, *window, std::cout) == 0 ? kExitDone : kExitNotDone;
  // With --json: the same lines, in one object once every set is answered.
  std::ostringstream out;
  const bool ok = run_rewarm(config, *window, out) == 0;
  std::vector<std::string> lines;
  std::istringstream in(out.str());
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  print_json({{"command", "rewarm"}, {"ok", ok}, {"used_within_s", *window}, {"lines", lines}});
  return ok ? kExitDone : kExitNotDone;
}

}  // namespace clsi::venv::admin
