// `clsi-venvs rewarm`: after a base-image upgrade every key changes (the key
// covers the interpreter and pip), and every project would wait for a build
// on its next compile. Rewarm asks the build service, ahead of the users, for
// every requirement set whose venv was used within a window, exactly as a
// compile would: the service keys it for the interpreter and pip it has now,
// builds what is missing and answers at once for what is current.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "config.hpp"

namespace clsi::venv {

struct RewarmSet {
  std::vector<std::string> requirements;  // canonical lines, from the venv's record
  std::string from_key;                   // the venv whose record they came from (most recent use)
  std::int64_t last_used = 0;
};

// The distinct requirement sets of complete venvs used in the last
// `used_within_s` seconds, most recently used first.
std::vector<RewarmSet> sets_to_rewarm(const Config& config, std::int64_t used_within_s);

// Asks the service for each set, at most service.max_parallel_builds at
// once, printing one line per set to `out`. 0 when every set has a venv,
// 1 when any could not be built or the service could not be reached.
int run_rewarm(const Config& config, std::int64_t used_within_s, std::ostream& out);

}  // namespace clsi::venv
