// What the store holds, and eviction that keeps all of it, not only the
// venvs, within eviction.max_total_mb. A venv is never evicted while a
// compile holds its lock (shared, while rendering) or a build holds it
// (exclusive): eviction needs the exclusive lock, taken without waiting. What
// belongs to a key that is gone (its build log, failure record, key-cache
// entries and lock file) goes with it, under the same lock.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config.hpp"
#include "expected.hpp"
#include "process_runner.hpp"
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
// Quick total of the venvs from the records (sizes measured at build time).
Usage store_usage(const Store& store);

// The parts of the store, as measure_store() and the metrics name them.
inline constexpr const char* kStoreParts[] = {"envs",     "dists", "pip_cache", "logs",
                                              "failures", "keys",  "locks",     "probes",
                                              "tmp",      "trash", "events",    "other"};

// The whole store on disk: allocated blocks, each inode once, no symlink
// followed.
struct StoreUsage {
  std::int64_t total_bytes = 0;
  std::int64_t files = 0;                          // files, directories and links
  std::map<std::string, std::int64_t> part_bytes;  // by kStoreParts
  std::map<std::string, std::int64_t> part_files;
  // by key: envs/<key>/ and its record, without the files it links from
  // dists/ (those are the "dists" part)
  std::map<std::string, std::int64_t> env_bytes;
  std::size_t venvs = 0;       // complete ones
  std::size_t unreadable = 0;  // directories that could not be read
};

// A complete venv never changes (nobody writes it after its record), so its
// size is measured once per build: by key and the inode of its directory.
// Thread-safe.
class VenvSizeMemo {
 public:
  std::optional<std::pair<std::int64_t, std::int64_t>> find(const std::string& key,
                                                            std::uint64_t ino) const;
  void put(const std::string& key, std::uint64_t ino, std::int64_t bytes, std::int64_t files);
  void clear();  // a distribution went: the venvs that linked it hold more alone

 private:
  struct Entry {
    std::uint64_t ino = 0;
    std::int64_t bytes = 0, files = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> sizes_;
};

// An error, not zeros, when the store cannot be read: its root or envs/
// missing (an unmounted volume), not a directory, or not readable.
Expected<StoreUsage> measure_store(const Store& store, VenvSizeMemo* memo = nullptr);

struct GcOptions {
  std::int64_t budget_bytes = 0;  // the whole store
  bool dry_run = false;
  std::set<std::string> keep;             // never evicted (the venv just built)
  std::int64_t unused_for_s = 0;          // venvs unused this long are evicted anyway; 0: off
  std::int64_t pip_cache_max_bytes = -1;  // pip's cache is pruned to this first; -1: no cap
  std::int64_t failure_ttl_s = -1;        // failure records older than this are gone; -1: kept
  std::int64_t free_bytes_wanted = 0;     // and free this much more (the free-space guard)
};
// The options of the configuration (budget, unused_for_s, max_pip_cache_mb,
// retry_failed_after_s).
GcOptions gc_options(const Config& config);

struct GcReport {
  std::vector<std::string> lines;    // what was done or skipped, and why
  std::vector<std::string> removed;  // keys of evicted venvs
  std::vector<std::string> failed;   // "could not remove <key>: why", also in lines
  std::int64_t freed_bytes = 0;      // everything removed, venvs or not
  std::int64_t total_before = 0;     // the whole store
  std::int64_t total_after = 0;
  bool within_budget = true;
  std::string error;  // the store could not be measured: nothing was done
};

// Removes leftovers of interrupted builds, stale temporary files, expired
// failure records, and what belongs to keys that are gone; evicts venvs
// unused for unused_for_s; rotates events.log; prunes pip's cache to its cap;
// then evicts least recently used venvs, and last prunes pip's cache
// further, until the whole store is within the budget. `dry_run`: only report.
GcReport collect_garbage(const Store& store, const GcOptions& options,
                         VenvSizeMemo* memo = nullptr);
// The budget alone, as before: no cap on pip's cache, failure records kept.
GcReport collect_garbage(const Store& store, std::int64_t budget_bytes, bool dry_run,
                         const std::set<std::string>& keep = {});

// After a build (eviction.gc_after_build): gc when the store is over budget.
// Its lines go to `log`; returns the report (nothing done: no lines).
GcReport evict_after_build(const Config& config, const Store& store,
                           const std::set<std::string>& keep, const LineSink& log,
                           VenvSizeMemo* memo = nullptr);

// Free space on the store's volume, for unprivileged writers (statvfs).
Expected<std::int64_t> free_bytes(const std::string& path);

// Whether the store's volume has eviction.min_free_mb free (0: no check), when
// make_room() has nothing to do: a statvfs, no walk of the store.
bool room_enough(const Config& config, const Store& store);

// Before a build: when the volume has less than eviction.min_free_mb free,
// evicts to make that much room. An error, in words for the compile's log,
// when it still has not.
Expected<bool> make_room(const Config& config, const Store& store,
                         const std::set<std::string>& keep, const LineSink& log,
                         VenvSizeMemo* memo = nullptr);

// "30d", "12h", "90m", "45s", "2w" or plain seconds.
Expected<std::int64_t> parse_duration(const std::string& text);

}  // namespace clsi::venv
