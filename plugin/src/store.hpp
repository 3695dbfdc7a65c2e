// The on-disk store under venvs_dir (docs/store.md):
//
//   envs/<key>/            the venv
//   envs/<key>.complete    completion record, outside the venv's tree; its
//                          presence marks the venv usable, its mtime is the
//                          last use (the service stamps it when a
//                          compile host reports a use)
//   locks/<key>.lock       per-key lock file; deleted, under its exclusive lock,
//                          once the key is gone
//   probes/<fingerprint>   cached facts about a base interpreter
//   keys/<fnv64>           key material -> key, so a hit computes no SHA-256
//   tmp/                   private build directories; leftovers are garbage
//   trash/                 entries moved out of the way before deletion
//   dists/<sha256>/        a wheel unpacked and byte-compiled once, read-only;
//                          venvs hard-link its files (dist_store.hpp)
//   cache/pip/             pip's download cache, shared by all builds
//   failures/<key>         the last failed build of a key: when, and why
//   logs/<key>.log         output of the key's last build
//   events.log             one line per hit, miss, build, failure, eviction;
//   events.log.1           rotated by eviction, one generation kept
//   metrics.json           the service's counters, kept across restarts
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "expected.hpp"

namespace clsi::venv {

struct Record {
  std::string key;
  std::vector<std::string> requested;  // canonical requirement lines
  std::vector<std::string> installed;  // name==version of what pip installed
  std::vector<std::string> dists;      // sha256 of each wheel linked from dists/
  std::string python;                  // interpreter version
  std::string python_path;
  std::string pip;
  std::string index_url;
  bool only_binary = true;
  std::int64_t built_at = 0;  // unix seconds
  double build_seconds = 0;
  std::int64_t size_bytes = 0;
  // The file the venv's bin/python3 resolved to when it was made: health is
  // "it still does" (a wrapper or shim as base_python is fine).
  std::uint64_t interpreter_dev = 0, interpreter_ino = 0;
};

// A completion record's text (JSON; YAML from services before it) as a
// Record; nullopt when it is neither, or has no `requested` list.
std::optional<Record> parse_record(const std::string& text);

struct Failure {
  std::int64_t at = 0;        // unix seconds
  std::int64_t retry_at = 0;  // unix seconds
  std::string reason;
};

class Store {
 public:
  explicit Store(std::string root) : root_(std::move(root)) {}

  [[nodiscard]] const std::string& root() const { return root_; }
  [[nodiscard]] std::string envs_dir() const { return root_ + "/envs"; }
  [[nodiscard]] std::string env_dir(const std::string& key) const { return envs_dir() + "/" + key; }
  [[nodiscard]] std::string record_path(const std::string& key) const {
    return envs_dir() + "/" + key + ".complete";
  }
  [[nodiscard]] std::string lock_path(const std::string& key) const {
    return root_ + "/locks/" + key + ".lock";
  }
  [[nodiscard]] std::string probes_dir() const { return root_ + "/probes"; }
  [[nodiscard]] std::string keys_dir() const { return root_ + "/keys"; }
  [[nodiscard]] std::string tmp_dir() const { return root_ + "/tmp"; }
  [[nodiscard]] std::string trash_dir() const { return root_ + "/trash"; }
  [[nodiscard]] std::string dists_dir() const { return root_ + "/dists"; }
  [[nodiscard]] std::string pip_cache_dir() const { return root_ + "/cache/pip"; }
  [[nodiscard]] std::string failures_dir() const { return root_ + "/failures"; }
  [[nodiscard]] std::string logs_dir() const { return root_ + "/logs"; }
  [[nodiscard]] std::string build_log_path(const std::string& key) const {
    return logs_dir() + "/" + key + ".log";
  }
  [[nodiscard]] std::string events_path() const { return root_ + "/events.log"; }
  [[nodiscard]] std::string events_rotated_path() const { return root_ + "/events.log.1"; }
  [[nodiscard]] std::string locks_dir() const { return root_ + "/locks"; }
  [[nodiscard]] std::string failure_path(const std::string& key) const {
    return failures_dir() + "/" + key;
  }
  [[nodiscard]] std::string metrics_state_path() const { return root_ + "/metrics.json"; }

  // Creates the store's directories (mode 0755) if missing.
  [[nodiscard]] Expected<bool> ensure_layout() const;
  [[nodiscard]] bool is_complete(const std::string& key) const;
  // Moves the venv directory (and record) out of the way atomically, then
  // deletes it. Safe against a concurrent reader seeing a half-deleted tree
  // only when the caller holds the key's exclusive lock.
  [[nodiscard]] Expected<bool> remove_env(const std::string& key) const;
  [[nodiscard]] Expected<bool> write_record(const Record& record) const;
  [[nodiscard]] std::optional<Record> read_record(const std::string& key) const;
  // Marks the venv used now (mtime of the record).
  void touch(const std::string& key) const;
  // Failure memory: a failed build is not retried for a while.
  [[nodiscard]] Expected<bool> remember_failure(const std::string& key,
                                                const std::string& reason) const;
  [[nodiscard]] std::optional<Failure> recent_failure(const std::string& key,
                                                      std::int64_t max_age_s) const;
  void forget_failure(const std::string& key) const;
  // Appends "<unix time> <kind> <key> <value>" to events.log (best effort).
  void append_event(std::string_view kind, const std::string& key, double value = 0) const;
  // Keys that have a venv directory or a record.
  [[nodiscard]] std::vector<std::string> keys() const;

 private:
  std::string root_;
};

// The text of a regular file of at most 1 MiB, opened without following a
// symlink or blocking; nullopt for anything else.
std::optional<std::string> read_small_regular_file(const std::string& path);

// "340 KB", "12.5 MB".
std::string human_size(std::int64_t bytes);
// A unix time in UTC with a strftime format, e.g. "%H:%M:%S UTC"; "-" for 0.
std::string format_utc(std::int64_t unix_seconds, const char* format);

// Bytes on disk under `path` (allocated blocks, no symlink followed).
std::int64_t disk_usage(const std::string& path);

// 64 lowercase hex digits.
bool is_store_key(const std::string& s);

}  // namespace clsi::venv
