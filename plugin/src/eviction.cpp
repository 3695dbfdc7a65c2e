#include "eviction.hpp"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>

#include "clsi/errno_text.hpp"
#include "dist_store.hpp"
#include "key.hpp"
#include "lock.hpp"
#include "probe.hpp"

namespace fs = std::filesystem;

namespace clsi::venv {
namespace {

constexpr std::int64_t kMiB = std::int64_t{1024} * 1024;

// "340 KB", "12.5 MB".
std::string mb(std::int64_t bytes) {
  return human_size(std::max<std::int64_t>(bytes, 0));
}

// Temporary build directories and trash older than this are garbage.
constexpr std::int64_t kStaleTempSeconds = std::int64_t{24} * 3600;
// pip's cache may be pruned while a build runs: pip treats a cache file
// that vanished as a miss, and any error of its cache as none (its
// SafeFileCache suppresses OSError). A directory younger than this may be
// one that pip has just made to write into, and stays.
constexpr std::int64_t kCacheDirGraceSeconds = 60;
// A keys/ entry this young may belong to a build that is only queued.
constexpr std::int64_t kKeyEntryGraceSeconds = 3600;

std::int64_t blocks(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_blocks) * 512;
}

std::string ago(std::int64_t seconds) {
  if (seconds < std::int64_t{2} * 3600) return std::to_string(seconds / 60) + " min";
  if (seconds < std::int64_t{2} * 86400) return std::to_string(seconds / 3600) + " h";
  return std::to_string(seconds / 86400) + " days";
}

// Eviction goes a little below the budget: the writes that follow it (an
// event, the counters, a key-cache entry) must not take the store over.
std::int64_t gc_target(std::int64_t budget) {
  return budget - std::clamp(budget / 100, std::int64_t{64} * 1024, 64 * kMiB);
}

std::int64_t now_s() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

struct Tally {
  std::int64_t bytes = 0, files = 0;
  std::size_t unreadable = 0;
};

// Walks trees without following symlinks, counting each inode once (a hard
// link is not more disk). Once dists/ is counted, a file with a second link
// is not counted again anywhere else: outside dists/, only the service's
// linker makes hard links, and only to files of dists/ (venv_linker.hpp).
class Walker {
 public:
  // `path` itself and everything under it.
  void add(const std::string& path, Tally& t) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return;
    count(st, t);
    if (S_ISDIR(st.st_mode)) tree(path, t);
  }
  // Everything under the directory `dir`, not `dir` itself.
  void tree(const std::string& dir, Tally& t) {
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) {
      ++t.unreadable;
      return;
    }
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      if (ec) {
        ++t.unreadable;
        return;
      }
      add(it->path().string(), t);
    }
  }

 private:
  void count(const struct stat& st, Tally& t) {
    if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) &&
        (links_counted_ || !seen_.insert({st.st_dev, st.st_ino}).second))
      return;
    t.bytes += blocks(st);
    ++t.files;
  }
  std::set<std::pair<dev_t, ino_t>> seen_;

 public:
  void dists_counted() { links_counted_ = true; }

 private:
  bool links_counted_ = false;
};

// The part of the store a top-level entry belongs to.
std::string part_of(const std::string& name) {
  static const std::set<std::string> kDirs = {"logs",   "failures", "keys", "locks",
                                              "probes", "tmp",      "trash"};
  if (kDirs.count(name)) return name;
  if (name == "events.log" || name == "events.log.1") return "events";
  return "other";
}

// The key of a store file name such as "<key>.log", "<key>.lock" or "<key>".
std::string key_of(const std::string& name, const std::string& suffix) {
  if (name.size() != 64 + suffix.size() || name.compare(64, std::string::npos, suffix) != 0)
    return {};
  std::string key = name.substr(0, 64);
  return is_store_key(key) ? key : std::string();
}

bool has_env(const Store& store, const std::string& key) {
  struct stat st {};
  return ::lstat(store.env_dir(key).c_str(), &st) == 0 ||
         ::lstat(store.record_path(key).c_str(), &st) == 0;
}

// Entries of the directory `dir`, each with its lstat; nothing on error.
std::vector<std::pair<std::string, struct stat>> entries(const std::string& dir) {
  std::vector<std::pair<std::string, struct stat>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) == 0) out.emplace_back(e.path().filename().string(), st);
  }
  return out;
}

// One pass of eviction: what it removed and what it would remove.
class Gc {
 public:
  Gc(const Store& store, const GcOptions& options, VenvSizeMemo* memo)
      : store_(store), o_(options), memo_(memo), now_(now_s()) {}

  GcReport run();

 private:
  // Removes a file (or, `tree`, a directory with everything in it); the
  // bytes it held. Dry run: only what it would free.
  std::int64_t remove_path(const std::string& path, bool tree = false);
  void evict(const std::string& key, const std::string& why, bool complete);
  void clean_key_files(const std::string& key);
  void clean_gone_keys();
  void clean_probes();
  void clean_stale_temp();
  void rotate_events();
  void prune_pip_cache(std::int64_t target_bytes);
  void sweep_dists(const std::vector<std::string>& candidates, const std::string& why);
  [[nodiscard]] bool failure_live(const std::string& key) const;
  [[nodiscard]] std::int64_t target() const {
    return std::min(gc_target(o_.budget_bytes), before_ - o_.free_bytes_wanted);
  }

  const Store& store_;
  const GcOptions& o_;
  VenvSizeMemo* memo_;
  const std::int64_t now_;
  GcReport r_;
  StoreUsage usage_;
  std::int64_t before_ = 0;
  std::int64_t total_ = 0;
  std::map<std::string, std::vector<std::string>> key_entries_;  // key -> keys/ files
};

std::int64_t Gc::remove_path(const std::string& path, bool tree) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  std::int64_t bytes = blocks(st);
  if (tree && S_ISDIR(st.st_mode)) {
    Tally t;
    Walker().tree(path, t);
    bytes += t.bytes;
  }
  if (!o_.dry_run) {
    std::error_code ec;
    if (tree) {
      fs::remove_all(path, ec);
    } else if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return 0;
    }
    if (ec) return 0;
  }
  total_ -= bytes;
  r_.freed_bytes += bytes;
  return bytes;
}

bool Gc::failure_live(const std::string& key) const {
  struct stat st {};
  if (::lstat(store_.failure_path(key).c_str(), &st) != 0) return false;
  if (o_.failure_ttl_s < 0) return true;  // no TTL known: kept
  return store_.recent_failure(key, o_.failure_ttl_s).has_value();
}

// The build log, the failure record and the key-cache entries of `key`,
// whose venv is gone. The caller holds the key's exclusive lock, or there is
// no lock file at all.
void Gc::clean_key_files(const std::string& key) {
  remove_path(store_.build_log_path(key));
  remove_path(store_.failure_path(key));
  for (const auto& entry : key_entries_[key])
    remove_path(store_.keys_dir() + "/" + entry);
  key_entries_.erase(key);
}

void Gc::evict(const std::string& key, const std::string& why, bool complete) {
  // A dry run writes nothing, not even a lock file (it may run as anyone).
  auto lock = KeyLock::open(store_.lock_path(key), !o_.dry_run);
  if ((lock && !lock->try_lock(KeyLock::Mode::kExclusive)) || (!lock && !o_.dry_run)) {
    r_.lines.push_back("kept " + short_key(key) + ": in use by a compile or being built");
    return;
  }
  // Re-checked under the lock: a build may have completed since the scan.
  if (!complete && store_.is_complete(key)) return;
  const std::int64_t bytes = usage_.env_bytes[key];
  std::vector<std::string> dists;
  if (auto rec = store_.read_record(key)) dists = rec->dists;
  if (!o_.dry_run) {
    if (auto rm = store_.remove_env(key); !rm) {
      r_.lines.push_back("could not remove " + short_key(key) + ": " + rm.error());
      r_.failed.push_back(r_.lines.back());
      return;
    }
  }
  total_ -= bytes;
  r_.freed_bytes += bytes;
  usage_.env_bytes.erase(key);
  r_.lines.push_back(std::string(o_.dry_run ? "would remove " : "removed ") + short_key(key) +
                     " (" + mb(bytes) + ", " + why + ")");
  r_.removed.push_back(key);
  clean_key_files(key);
  // Last, still under its lock: the lock file, so nothing of the key is left.
  remove_path(store_.lock_path(key));
  // Its distributions, where it was the last venv that linked them.
  sweep_dists(dists, "no venv links it since " + short_key(key) + " went");
}

// Distributions no venv links and no build holds: removed, their bytes freed
// (a venv's size counts only its own files; the shared ones are here).
void Gc::sweep_dists(const std::vector<std::string>& candidates, const std::string& why) {
  DistStore dists(store_);
  for (const auto& sha : candidates) {
    auto freed = dists.remove_if_unlinked(sha, o_.dry_run);
    if (!freed) {
      r_.lines.push_back("could not remove distribution " + sha.substr(0, 12) + ": " +
                         freed.error());
      r_.failed.push_back(r_.lines.back());
      continue;
    }
    if (*freed == 0) continue;
    total_ -= *freed;
    r_.freed_bytes += *freed;
    r_.lines.push_back(std::string(o_.dry_run ? "would remove" : "removed") + " distribution " +
                       sha.substr(0, 12) + " (" + mb(*freed) + ", " + why + ")");
    // Venvs that shared its files now hold them alone: measured again.
    if (memo_ != nullptr && !o_.dry_run) memo_->clear();
  }
}

// Logs, failure records, key-cache entries and lock files of keys that have
// no venv: what is left of evicted venvs and of builds that failed long ago.
void Gc::clean_gone_keys() {
  std::set<std::string> candidates;
  for (const auto& [name, st] : entries(store_.logs_dir()))
    if (auto k = key_of(name, ".log"); !k.empty()) candidates.insert(k);
  for (const auto& [name, st] : entries(store_.failures_dir()))
    if (auto k = key_of(name, ""); !k.empty()) candidates.insert(k);
  for (const auto& [name, st] : entries(store_.locks_dir()))
    if (auto k = key_of(name, ".lock"); !k.empty()) candidates.insert(k);
  for (const auto& [name, st] : entries(store_.keys_dir())) {
    if (!S_ISREG(st.st_mode) || now_ - st.st_mtim.tv_sec < kKeyEntryGraceSeconds) continue;
    auto text = read_small_regular_file(store_.keys_dir() + "/" + name);
    if (!text || text->size() < 65) continue;
    std::string k = text->substr(0, 64);
    if (!is_store_key(k)) continue;
    key_entries_[k].push_back(name);
    candidates.insert(k);
  }
  std::size_t cleaned = 0, held = 0;
  for (const auto& key : candidates) {
    if (o_.keep.count(key) || has_env(store_, key) || failure_live(key)) continue;
    const std::string lock_path = store_.lock_path(key);
    struct stat st {};
    if (::lstat(lock_path.c_str(), &st) != 0) {
      clean_key_files(key);  // no lock file: nobody holds, or builds, this key
      ++cleaned;
      continue;
    }
    if (!S_ISREG(st.st_mode)) {  // nobody can lock anything else
      remove_path(lock_path, true);
      clean_key_files(key);
      ++cleaned;
      continue;
    }
    auto lock = KeyLock::open(lock_path, false);
    if (!lock || !lock->try_lock(KeyLock::Mode::kExclusive)) {
      ++held;  // a lease or a build: its files stay
      continue;
    }
    if (has_env(store_, key)) continue;  // built meanwhile
    clean_key_files(key);
    remove_path(lock_path);  // under its exclusive lock
    ++cleaned;
  }
  if (cleaned > 0) {
    r_.lines.push_back(std::string(o_.dry_run ? "would remove" : "removed") + " the files of " +
                       std::to_string(cleaned) +
                       " key(s) that have no venv (build logs, failure records, key-cache "
                       "entries, lock files)");
  }
  if (held > 0) {
    r_.lines.push_back("kept the lock files of " + std::to_string(held) +
                       " key(s) without a venv: held by a compile or a build");
  }
}

// A probe names the interpreter file it was made from; once that file is
// gone or changed (an image upgrade) the probe is never read again.
void Gc::clean_probes() {
  for (const auto& [name, st] : entries(store_.probes_dir())) {
    const std::string path = store_.probes_dir() + "/" + name;
    auto text = read_small_regular_file(path);
    if (!text) continue;
    auto at = text->find("fingerprint=");
    if (at != 0) continue;
    std::string fp = text->substr(12, text->find('\n') - 12);
    auto real = fp.substr(0, fp.find('|'));
    auto id = identify_interpreter(real);
    if (!id || id->fingerprint() != fp) remove_path(path);
  }
}

// Crash leftovers in tmp/ and trash/, and the temporary files of atomic
// writes in the small-file directories, older than a day.
void Gc::clean_stale_temp() {
  for (const auto& dir : {store_.tmp_dir(), store_.trash_dir()}) {
    for (const auto& [name, st] : entries(dir)) {
      if (now_ - st.st_mtim.tv_sec > kStaleTempSeconds) remove_path(dir + '/' += name, true);
    }
  }
  for (const auto& dir :
       {store_.keys_dir(), store_.probes_dir(), store_.failures_dir(), store_.envs_dir()}) {
    for (const auto& [name, st] : entries(dir)) {
      if (name.find(".tmp-") != std::string::npos && S_ISREG(st.st_mode) &&
          now_ - st.st_mtim.tv_sec > kStaleTempSeconds)
        remove_path(dir + '/' += name);
    }
  }
}

void Gc::rotate_events() {
  const std::int64_t limit = std::clamp(o_.budget_bytes / 64, std::int64_t{64} * 1024, 16 * kMiB);
  struct stat st {};
  if (::lstat(store_.events_path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_size <= limit)
    return;
  remove_path(store_.events_rotated_path());
  if (!o_.dry_run)
    (void)::rename(store_.events_path().c_str(), store_.events_rotated_path().c_str());
  r_.lines.push_back(std::string(o_.dry_run ? "would rotate" : "rotated") + " events.log (" +
                     mb(st.st_size) + ") to events.log.1");
}

// Oldest files first (by last access or change, whichever is later), then
// the directories left empty.
void Gc::prune_pip_cache(std::int64_t target_bytes) {
  std::int64_t size = usage_.part_bytes["pip_cache"];
  if (size <= target_bytes) return;
  struct File {
    std::int64_t used;
    std::string path;
  };
  std::vector<File> files;
  std::vector<std::pair<std::string, std::int64_t>> dirs;  // and their mtime before pruning
  std::function<void(const std::string&)> walk = [&](const std::string& dir) {
    for (const auto& [name, st] : entries(dir)) {
      std::string path = dir + '/';
      path += name;
      if (S_ISDIR(st.st_mode)) {
        walk(path);
        dirs.emplace_back(path, st.st_mtim.tv_sec);  // after its contents: deepest first
      } else {
        files.push_back({std::max(st.st_atim.tv_sec, st.st_mtim.tv_sec), path});
      }
    }
  };
  walk(store_.pip_cache_dir());
  std::sort(files.begin(), files.end(),
            [](const File& a, const File& b) { return a.used < b.used; });
  const std::int64_t from = size;
  std::size_t n = 0;
  for (const auto& f : files) {
    if (size <= target_bytes) break;
    size -= remove_path(f.path);
    ++n;
  }
  // Empty directories are disk too (pip nests its HTTP cache five deep).
  for (const auto& [d, mtime] : dirs) {
    struct stat st {};
    if (o_.dry_run) break;
    if (now_ - mtime >= kCacheDirGraceSeconds && ::lstat(d.c_str(), &st) == 0 &&
        ::rmdir(d.c_str()) == 0) {
      size -= blocks(st);
      total_ -= blocks(st);
      r_.freed_bytes += blocks(st);
    }
  }
  usage_.part_bytes["pip_cache"] = size;
  if (n > 0) {
    r_.lines.push_back(std::string(o_.dry_run ? "would prune" : "pruned") + " pip's cache: " +
                       std::to_string(n) + " file(s), " + mb(from) + " -> " + mb(size));
  }
}

GcReport Gc::run() {
  auto usage = measure_store(store_, memo_);
  if (!usage) {
    r_.error = usage.error();
    r_.within_budget = false;
    r_.lines.push_back("nothing was evicted: " + usage.error());
    return r_;
  }
  usage_ = std::move(*usage);
  before_ = total_ = r_.total_before = usage_.total_bytes;

  // Venvs and their last use, oldest first. A stamp in the future (clock
  // skew) counts as now, so it cannot put a venv last in LRU for good.
  struct Env {
    std::string key;
    bool complete;
    std::int64_t last_used;
  };
  std::vector<Env> envs;
  for (const auto& key : store_.keys()) {
    struct stat st {};
    if (::lstat(store_.record_path(key).c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      envs.push_back({key, true, std::min<std::int64_t>(st.st_mtim.tv_sec, now_)});
    } else {
      envs.push_back({key, false, 0});
    }
  }
  std::sort(envs.begin(), envs.end(), [](const Env& a, const Env& b) {
    return a.last_used != b.last_used ? a.last_used < b.last_used : a.key < b.key;
  });

  // Leftovers of interrupted builds first: nobody can use them.
  for (const auto& e : envs)
    if (!e.complete && !o_.keep.count(e.key)) evict(e.key, "unfinished build", false);
  if (o_.unused_for_s > 0) {
    for (const auto& e : envs) {
      if (e.complete && !o_.keep.count(e.key) && now_ - e.last_used > o_.unused_for_s)
        evict(e.key, "not used for " + ago(now_ - e.last_used), true);
    }
  }
  sweep_dists(DistStore(store_).list(), "no venv links it");
  clean_gone_keys();
  clean_probes();
  clean_stale_temp();
  rotate_events();
  if (o_.pip_cache_max_bytes >= 0) prune_pip_cache(o_.pip_cache_max_bytes);

  // Least recently used first, down to the budget.
  for (const auto& e : envs) {
    if (total_ <= target()) break;
    if (!e.complete || o_.keep.count(e.key) || !usage_.env_bytes.count(e.key)) continue;
    evict(e.key, "last used " + ago(now_ - e.last_used) + " ago", true);
  }
  // What is left to give: pip's cache, then the rotated events.
  if (total_ > target())
    prune_pip_cache(
        std::max<std::int64_t>(0, usage_.part_bytes["pip_cache"] - (total_ - target())));
  if (total_ > target()) remove_path(store_.events_rotated_path());

  r_.total_after = total_;
  r_.within_budget = total_ <= o_.budget_bytes;
  r_.lines.push_back("total " + mb(r_.total_before) + " -> " + mb(total_) + ", budget " +
                     mb(o_.budget_bytes) +
                     (r_.within_budget ? std::string()
                                       : "; still over it: what is left cannot be evicted (venvs "
                                         "in use or being built, the store's own files)"));
  return r_;
}

}  // namespace

std::optional<std::pair<std::int64_t, std::int64_t>> VenvSizeMemo::find(const std::string& key,
                                                                        std::uint64_t ino) const {
  std::lock_guard lock(mu_);
  auto it = sizes_.find(key);
  if (it == sizes_.end() || it->second.ino != ino) return std::nullopt;
  return std::pair{it->second.bytes, it->second.files};
}

void VenvSizeMemo::clear() {
  std::lock_guard lock(mu_);
  sizes_.clear();
}

void VenvSizeMemo::put(const std::string& key, std::uint64_t ino, std::int64_t bytes,
                       std::int64_t files) {
  std::lock_guard lock(mu_);
  if (sizes_.size() > 100000) sizes_.clear();  // keys of a store long gone
  sizes_[key] = {ino, bytes, files};
}

Expected<StoreUsage> measure_store(const Store& store, VenvSizeMemo* memo) {
  struct stat st {};
  if (::lstat(store.root().c_str(), &st) != 0)
    return Error{"cannot read the store " + store.root() + ": " + clsi::errno_text(errno)};
  if (!S_ISDIR(st.st_mode)) return Error{"the store " + store.root() + " is not a directory"};
  std::error_code ec;
  fs::directory_iterator probe(store.envs_dir(), ec);
  if (ec) {
    return Error{"cannot read the store " + store.root() + " (" + store.envs_dir() +
                 "): " + ec.message()};
  }
  StoreUsage u;
  for (const char* part : kStoreParts) {
    u.part_bytes[part] = 0;
    u.part_files[part] = 0;
  }
  Walker walker;
  auto add_to = [&](const std::string& part, const Tally& t) {
    u.part_bytes[part] += t.bytes;
    u.part_files[part] += t.files;
    u.unreadable += t.unreadable;
  };
  {  // the root directory itself
    Tally t;
    t.bytes = blocks(st);
    t.files = 1;
    add_to("other", t);
  }
  {  // dists/ first: a file a venv links is counted once, as the store's.
    // A published distribution never changes (dist_store.hpp): measured
    // once per directory inode, as a complete venv is below.
    Tally t;
    struct stat dst {};
    if (::lstat(store.dists_dir().c_str(), &dst) == 0 && S_ISDIR(dst.st_mode)) {
      t.bytes = blocks(dst);
      t.files = 1;
      for (const auto& [name, est] : entries(store.dists_dir())) {
        const std::string path = store.dists_dir() + "/" + name;
        Tally d;
        const std::string memo_key = "dists/" + name;
        if (memo && S_ISDIR(est.st_mode) && is_sha256_hex(name)) {
          if (auto known = memo->find(memo_key, est.st_ino)) {
            d.bytes = known->first;
            d.files = known->second;
          } else {
            walker.add(path, d);
            if (d.unreadable == 0) memo->put(memo_key, est.st_ino, d.bytes, d.files);
          }
        } else {
          walker.add(path, d);
        }
        t.bytes += d.bytes;
        t.files += d.files;
        t.unreadable += d.unreadable;
      }
    } else {
      walker.add(store.dists_dir(), t);
    }
    add_to("dists", t);
    walker.dists_counted();
  }
  fs::directory_iterator top(store.root(), ec);
  if (ec) return Error{"cannot read the store " + store.root() + ": " + ec.message()};
  for (; top != fs::directory_iterator(); top.increment(ec)) {
    if (ec) return Error{"cannot read the store " + store.root() + ": " + ec.message()};
    const std::string name = top->path().filename().string();
    const std::string path = top->path().string();
    if (name == "dists") continue;
    if (name == "envs") {
      Tally self;
      struct stat est {};
      if (::lstat(path.c_str(), &est) == 0) {
        self.bytes = blocks(est);
        self.files = 1;
      }
      add_to("envs", self);
      fs::directory_iterator envs(path, ec);
      if (ec) return Error{"cannot read the store " + store.root() + ": " + ec.message()};
      for (; envs != fs::directory_iterator(); envs.increment(ec)) {
        if (ec) return Error{"cannot read " + path + ": " + ec.message()};
        std::string entry = envs->path().filename().string();
        std::string key = entry.substr(0, entry.find('.'));
        Tally t;
        struct stat vst {};
        const bool venv_dir =
            entry == key && ::lstat(envs->path().c_str(), &vst) == 0 && S_ISDIR(vst.st_mode);
        const bool complete = venv_dir && store.is_complete(key);
        if (complete && memo) {
          if (auto known = memo->find(key, vst.st_ino)) {
            t.bytes = known->first;
            t.files = known->second;
          } else {
            walker.add(envs->path().string(), t);
            if (t.unreadable == 0) memo->put(key, vst.st_ino, t.bytes, t.files);
          }
        } else {
          walker.add(envs->path().string(), t);
        }
        add_to("envs", t);
        if (is_store_key(key)) u.env_bytes[key] += t.bytes;
        if (complete) ++u.venvs;
      }
      continue;
    }
    Tally t;
    if (name == "cache") {
      struct stat cst {};
      if (::lstat(path.c_str(), &cst) == 0) {
        t.bytes = blocks(cst);
        t.files = 1;
      }
      add_to("other", t);
      for (const auto& [sub, sst] : entries(path)) {
        Tally s;
        walker.add(path + '/' += sub, s);
        add_to(sub == "pip" ? "pip_cache" : "other", s);
      }
      continue;
    }
    walker.add(path, t);
    add_to(part_of(name), t);
  }
  for (const auto& [part, bytes] : u.part_bytes) {
    u.total_bytes += bytes;
    u.files += u.part_files[part];
  }
  return u;
}

std::vector<EnvInfo> scan_envs(const Store& store, bool measure) {
  std::vector<EnvInfo> out;
  const auto now = now_s();
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

GcOptions gc_options(const Config& config) {
  GcOptions o;
  o.budget_bytes = config.eviction.max_total_mb * kMiB;
  o.unused_for_s = config.eviction.unused_for_s;
  o.pip_cache_max_bytes = config.eviction.max_pip_cache_mb * kMiB;
  o.failure_ttl_s = config.retry_failed_after_s;
  return o;
}

GcReport collect_garbage(const Store& store, const GcOptions& options, VenvSizeMemo* memo) {
  return Gc(store, options, memo).run();
}

GcReport collect_garbage(const Store& store, std::int64_t budget_bytes, bool dry_run,
                         const std::set<std::string>& keep) {
  GcOptions o;
  o.budget_bytes = budget_bytes;
  o.dry_run = dry_run;
  o.keep = keep;
  return Gc(store, o, nullptr).run();
}

GcReport evict_after_build(const Config& config, const Store& store,
                           const std::set<std::string>& keep, const LineSink& log,
                           VenvSizeMemo* memo) {
  if (!config.eviction.gc_after_build) return {};
  auto usage = measure_store(store, memo);
  if (usage && usage->total_bytes <= gc_target(config.eviction.max_total_mb * kMiB)) return {};
  log("the store is over eviction.max_total_mb (" + std::to_string(config.eviction.max_total_mb) +
      " MB); evicting the least recently used environments");
  auto o = gc_options(config);
  o.keep = keep;
  auto report = collect_garbage(store, o, memo);
  for (const auto& line : report.lines)
    log("gc: " + line);
  for (const auto& key : report.removed)
    store.append_event("evict", key);
  return report;
}

Expected<std::int64_t> free_bytes(const std::string& path) {
  struct statvfs vfs {};
  if (::statvfs(path.c_str(), &vfs) != 0)
    return Error{"cannot see the free space of " + path + ": " + clsi::errno_text(errno)};
  return static_cast<std::int64_t>(vfs.f_bavail) * static_cast<std::int64_t>(vfs.f_frsize);
}

bool room_enough(const Config& config, const Store& store) {
  const std::int64_t wanted = config.eviction.min_free_mb * kMiB;
  if (wanted <= 0) return true;
  auto free = free_bytes(store.root());
  return free && *free >= wanted;
}

Expected<bool> make_room(const Config& config, const Store& store,
                         const std::set<std::string>& keep, const LineSink& log,
                         VenvSizeMemo* memo) {
  const std::int64_t wanted = config.eviction.min_free_mb * kMiB;
  if (wanted <= 0) return true;
  auto free = free_bytes(store.root());
  if (!free) return Error{free.error()};
  if (*free >= wanted) return true;
  log("the store's volume has " + mb(*free) + " free, less than eviction.min_free_mb (" +
      std::to_string(config.eviction.min_free_mb) + " MB); evicting to make room");
  auto o = gc_options(config);
  o.keep = keep;
  o.free_bytes_wanted = wanted - *free;
  auto report = collect_garbage(store, o, memo);
  for (const auto& line : report.lines)
    log("gc: " + line);
  for (const auto& key : report.removed)
    store.append_event("evict", key);
  free = free_bytes(store.root());
  if (!free) return Error{free.error()};
  if (*free >= wanted) return true;
  return Error{
      "the store's volume has only " + mb(*free) + " free, less than eviction.min_free_mb (" +
      std::to_string(config.eviction.min_free_mb) + " MB), and nothing more could be evicted"};
}

Expected<std::int64_t> parse_duration(const std::string& text) {
  if (text.empty()) return Error{"an empty duration"};
  std::size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(text, &used, 10);
  } catch (const std::exception&) {
    return Error{"'" + text + "' is not a duration (e.g. 30d, 12h, 90m, 45s)"};
  }
  std::string unit = text.substr(used);
  static const std::map<std::string, std::int64_t> kUnits = {
      {"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {"w", 7 * 86400}};
  auto it = kUnits.find(unit);
  if (n < 0 || it == kUnits.end())
    return Error{"'" + text + "' is not a duration (e.g. 30d, 12h, 90m, 45s)"};
  if (n > std::numeric_limits<std::int64_t>::max() / it->second)
    return Error{"the duration " + text + " is too long"};
  return static_cast<std::int64_t>(n) * it->second;
}

}  // namespace clsi::venv
