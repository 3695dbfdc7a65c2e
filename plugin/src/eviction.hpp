// What the store holds, and LRU eviction down to a budget. A venv is never
// evicted while a compile holds its lock (shared, while rendering) or a
// build holds it (exclusive): eviction needs the exclusive lock, taken
// without waiting.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "store.hpp"

namespace clsi::venv {

struct EnvInfo {
  std::string key;
  bool complete = false;
  std::int64_t last_used = 0;  // unix seconds: the record's mtime
  std::int64_t size_bytes = 0;
  std::optional<Record> record;
};

// Every venv directory or record in the store; `measure`: real disk usage
// instead of the size recorded at build time. Sorted by last use, oldest first.
std::vector<EnvInfo> scan_envs(const Store& store, bool measure);

struct Usage {
  std::int64_t total_bytes = 0;
  std::size_t count = 0;
};
// Quick total from the records (sizes measured at build time).
Usage store_usage(const Store& store);

struct GcReport {
  std::vector<std::string> lines;    // what was done or skipped, and why
  std::vector<std::string> removed;  // keys
  std::int64_t freed_bytes = 0;
  std::int64_t total_before = 0;
  std::int64_t total_after = 0;
};

// Evicts least recently used venvs until the total is within `budget_bytes`,
// never one in use or being built, never one in `keep`. Removes leftovers of
// interrupted builds and stale temporary files. `dry_run`: only report.
GcReport collect_garbage(const Store& store, std::int64_t budget_bytes, bool dry_run,
                         const std::set<std::string>& keep = {});

}  // namespace clsi::venv
