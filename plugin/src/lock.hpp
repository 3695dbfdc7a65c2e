// Per-key locks: fcntl open-file-description locks on a lock file opened
// read-write. Unlike flock, these conflict across NFS clients (the server's
// lock manager sees them); unlike classic POSIX locks, they belong to the
// open file, so two compiles in one process do not share a lock, and closing
// another descriptor of the same file does not drop it.
//
// Readers (compiles using a venv) hold it shared; a builder or an evictor
// holds it exclusive. Eviction deletes the lock file of a key that is gone,
// and only while it holds the file's exclusive lock; so whoever takes the
// lock checks, once it has it, that the path still names the file it locked
// (try_lock and lock_until fail and stale() is true otherwise: open the path
// again).
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "clsi/unique_fd.hpp"
#include "expected.hpp"

namespace clsi::venv {

class KeyLock {
 public:
  enum class Mode { kShared, kExclusive };

  // Opens (creating if asked) the lock file, close-on-exec. Takes no lock.
  static Expected<KeyLock> open(const std::string& path, bool create);
  // Opens the lock file read-only, for a shared lock only: a compile host's
  // lease, granted through a read-only mount of the store.
  static Expected<KeyLock> open_for_lease(const std::string& path);

  // False when held by another in a conflicting mode, or when the file was
  // deleted or replaced since it was opened (then stale()).
  bool try_lock(Mode mode);
  // Polls until `deadline` (one try when it has passed) or until `cancelled`
  // says so; false then, or at once when the file is stale (waiting would
  // not help).
  bool lock_until(Mode mode, std::chrono::steady_clock::time_point deadline,
                  const std::function<bool()>& cancelled = {});
  void unlock();
  [[nodiscard]] bool held() const { return held_; }
  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] bool stale() const { return stale_; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  KeyLock() = default;
  UniqueFd fd_;
  std::string path_;
  bool held_ = false;
  bool stale_ = false;
};

}  // namespace clsi::venv
