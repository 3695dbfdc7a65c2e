// clsi-venvs gc: eviction down to the budget, as the service does it, never
// a venv in use or being built. A venv it should have removed and could not,
// or a store it could not measure, makes it exit 1.
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <limits>

#include "admin_output.hpp"
#include "commands.hpp"
#include "eviction.hpp"

namespace clsi::venv::admin {
int gc(const Config& config, const Common& common, const GcArgs& args) {
  Store store(config.venvs_dir);
  if (!args.dry_run) require_store_owner(store, "gc");
  constexpr std::int64_t kMiB = std::int64_t{1024} * 1024;
  GcOptions options = gc_options(config);
  if (args.max_total_mb >= 0) {
    options.budget_bytes =
        std::min<std::int64_t>(args.max_total_mb, std::numeric_limits<std::int64_t>::max() / kMiB) *
        kMiB;
  }
  options.dry_run = args.dry_run;
  if (!args.unused_for.empty()) {  // checked by the command line already
    if (auto d = parse_duration(args.unused_for)) options.unused_for_s = *d;
  }
  auto report = collect_garbage(store, options);
  if (!args.dry_run) {
    for (const auto& key : report.removed)
      store.append_event("evict", key);
  }
  const auto& failures = report.failed;
  const bool ok = report.error.empty() && failures.empty();
  if (common.json) {
    print_json({{"command", "gc"},
                {"ok", ok},
                {"dry_run", args.dry_run},
                {"budget_bytes", options.budget_bytes},
                {"total_before_bytes", report.total_before},
                {"total_after_bytes", report.total_after},
                {"freed_bytes", report.freed_bytes},
                {"within_budget", report.within_budget},
                {"removed", report.removed},
                {"failed", failures},
                {"error", report.error.empty() ? Json(nullptr) : Json(report.error)},
                {"lines", report.lines}});
  } else {
    for (const auto& line : report.lines)
      say(line);
  }
  if (!report.error.empty()) {
    std::cerr << "clsi-venvs gc: nothing was evicted: " << report.error << '\n' << std::flush;
    return kExitNotDone;
  }
  if (!failures.empty()) {
    std::cerr << "clsi-venvs gc: " << failures.size()
              << " environment(s) to be removed were not:\n";
    for (const auto& line : failures)
      std::cerr << "  " << line << '\n';
    std::cerr << std::flush;
    return kExitNotDone;
  }
  return kExitDone;
}

}  // namespace clsi::venv::admin
