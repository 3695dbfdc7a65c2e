// clsi-venvs stats: the build service's counters (live when it answers, else
// as it saved them in metrics.json), the whole store as it is now, the queue;
// as text, JSON or Prometheus (metrics.cpp). A store it cannot read is an
// error, not zeros.
#include <iostream>

#include "commands.hpp"
#include "metrics.hpp"

namespace clsi::venv::admin {

int stats(const Config& config, const Common& common, const StatsArgs& args) {
  const char* format = args.prometheus ? "prometheus" : common.json ? "json" : "text";
  return metrics::run_stats(config, format, std::cout, std::cerr) == 0 ? kExitDone : kExitNotDone;
}

}  // namespace clsi::venv::admin
