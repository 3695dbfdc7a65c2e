#include "lock.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include "clsi/errno_text.hpp"

namespace clsi::venv {
namespace {

bool set_lock(int fd, short type) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;
  int r;
  do {
    r = ::fcntl(fd, F_OFD_SETLK, &fl);
  } while (r != 0 && errno == EINTR);
  return r == 0;
}

// Only regular files are ever locked, by anyone: a FIFO or directory in a
// lock file's place holds nobody's lease, so the build service may replace it.
bool regular(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

Expected<KeyLock> KeyLock::open(const std::string& path, bool create) {
  int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | (create ? O_CREAT : 0);
  UniqueFd fd(::open(path.c_str(), flags, 0644));
  if (!fd) return Error{"cannot open the lock file " + path + ": " + clsi::errno_text(errno)};
  if (!regular(fd.get())) return Error{"the lock file " + path + " is not a regular file"};
  KeyLock l;
  l.fd_ = std::move(fd);
  l.path_ = path;
  return l;
}

Expected<KeyLock> KeyLock::open_for_lease(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) return Error{"cannot open the lock file " + path + ": " + clsi::errno_text(errno)};
  if (!regular(fd.get())) return Error{"the lock file " + path + " is not a regular file"};
  KeyLock l;
  l.fd_ = std::move(fd);
  l.path_ = path;
  return l;
}

bool KeyLock::try_lock(Mode mode) {
  if (!set_lock(fd_.get(), mode == Mode::kShared ? F_RDLCK : F_WRLCK)) return false;
  // Deleted (or replaced) under its exclusive lock between our open and our
  // lock: a lock on this file no longer keeps anyone away.
  struct stat mine {
  }, named{};
  if (::fstat(fd_.get(), &mine) != 0 || ::lstat(path_.c_str(), &named) != 0 ||
      mine.st_dev != named.st_dev || mine.st_ino != named.st_ino) {
    set_lock(fd_.get(), F_UNLCK);
    stale_ = true;
    return false;
  }
  held_ = true;
  return true;
}

bool KeyLock::lock_until(Mode mode, std::chrono::steady_clock::time_point deadline,
                         const std::function<bool()>& cancelled) {
  auto pause = std::chrono::milliseconds(10);
  for (;;) {
    if (try_lock(mode)) return true;
    if (stale_) return false;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline || (cancelled && cancelled())) return false;
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::milliseconds(250));
  }
}

void KeyLock::unlock() {
  if (held_) set_lock(fd_.get(), F_UNLCK);
  held_ = false;
}

}  // namespace clsi::venv
