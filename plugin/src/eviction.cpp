#include "eviction.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "key.hpp"
#include "lock.hpp"

namespace fs = std::filesystem;

namespace clsi::venv {
namespace {

std::string mb(std::int64_t bytes) {
  return std::to_string((bytes + std::int64_t{512} * 1024) / (std::int64_t{1024} * 1024)) + " MB";
}

// Temporary build directories and trash older than this are garbage.
constexpr std::int64_t kStaleTempSeconds = std::int64_t{24} * 3600;

}  // namespace

std::vector<EnvInfo> scan_envs(const Store& store, bool measure) {
  std::vector<EnvInfo> out;
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  for (const auto& key : store.keys()) {
    EnvInfo e;
    e.key = key;
    // One bad entry (a record that is a directory, an I/O error) is shown as
    // what it is; it never stops the scan of the rest of the store.
    try {
      struct stat st {};
      if (::lstat(store.record_path(key).c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        e.complete = true;
        e.last_used = st.st_mtim.tv_sec;
        e.record = store.read_record(key);
      } else if (::lstat(store.env_dir(key).c_str(), &st) == 0) {
        e.last_used = st.st_mtim.tv_sec;
      }
      // A stamp from the future (clock skew) would put a venv last in LRU.
      e.last_used = std::min(e.last_used, now);
      if (measure || !e.record) {
        e.size_bytes = disk_usage(store.env_dir(key));
      } else {
        e.size_bytes = e.record->size_bytes;
      }
    } catch (const std::exception&) {
      e.complete = false;
      e.record.reset();
    }
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const EnvInfo& a, const EnvInfo& b) {
    return a.last_used != b.last_used ? a.last_used < b.last_used : a.key < b.key;
  });
  return out;
}

Usage store_usage(const Store& store) {
  Usage u;
  for (const auto& e : scan_envs(store, false)) {
    u.total_bytes += e.size_bytes;
    ++u.count;
  }
  return u;
}

GcReport collect_garbage(const Store& store, std::int64_t budget_bytes, bool dry_run,
                         const std::set<std::string>& keep) {
  GcReport report;
  auto envs = scan_envs(store, true);
  for (const auto& e : envs)
    report.total_before += e.size_bytes;
  std::int64_t total = report.total_before;
  const char* verb = dry_run ? "would remove" : "removed";

  auto evict = [&](const EnvInfo& e, const std::string& why) {
    auto lock = KeyLock::open(store.lock_path(e.key), true);
    if (!lock || !lock->try_lock(KeyLock::Mode::kExclusive)) {
      report.lines.push_back("kept " + short_key(e.key) + ": in use by a compile or being built");
      return;
    }
    // Re-check under the lock: a build may have completed since the scan.
    if (!e.complete && store.is_complete(e.key)) return;
    if (!dry_run) {
      if (auto r = store.remove_env(e.key); !r) {
        report.lines.push_back("could not remove " + short_key(e.key) + ": " + r.error());
        return;
      }
    }
    report.lines.push_back(std::string(verb) + " " + short_key(e.key) + " (" + mb(e.size_bytes) +
                           ", " + why + ")");
    report.removed.push_back(e.key);
    report.freed_bytes += e.size_bytes;
    total -= e.size_bytes;
  };

  // Leftovers of interrupted builds first: nobody can use them.
  for (const auto& e : envs) {
    if (!e.complete && !keep.count(e.key)) evict(e, "unfinished build");
  }
  // Then least recently used first, down to the budget.
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  for (const auto& e : envs) {
    if (total <= budget_bytes) break;
    if (!e.complete || keep.count(e.key)) continue;
    evict(e, "last used " + std::to_string((now - e.last_used) / 60) + " min ago");
  }
  report.total_after = total;

  // Stale temporary directories and trash left by crashes.
  if (!dry_run) {
    for (const auto& dir : {store.tmp_dir(), store.trash_dir()}) {
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(dir, ec)) {
        struct stat st {};
        if (::lstat(entry.path().c_str(), &st) == 0 &&
            now - st.st_mtim.tv_sec > kStaleTempSeconds) {
          fs::remove_all(entry.path(), ec);
        }
      }
    }
  }
  report.lines.push_back("total " + mb(report.total_before) + " -> " + mb(total) + ", budget " +
                         mb(budget_bytes));
  return report;
}

}  // namespace clsi::venv
