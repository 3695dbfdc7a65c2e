#include "store_trust.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "clsi/errno_text.hpp"
#include "clsi/unique_fd.hpp"

namespace clsi::venv {
namespace {

std::string user_name(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found) return found->pw_name;
  return std::to_string(uid);
}

std::string describe(const std::string& path, const struct stat& st, uid_t me) {
  if (st.st_uid != me) {
    return path + " is owned by " + user_name(st.st_uid) + ", not by " + user_name(me) +
           " (the build service's user); fix: chown -R " + user_name(me) + ": " + path;
  }
  return path + " is writable by its group or by others; fix: chmod go-w " + path;
}

}  // namespace

bool owned_and_private(const struct stat& st, uid_t owner) {
  return st.st_uid == owner && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

Expected<uid_t> store_owner(const std::string& root) {
  struct stat st {};
  if (::lstat(root.c_str(), &st) != 0)
    return Error{"the venv store " + root + " does not exist: " + clsi::errno_text(errno)};
  if (!S_ISDIR(st.st_mode)) return Error{"the venv store " + root + " is not a directory"};
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return Error{"the venv store " + root + " is writable by users other than its owner"};
  return st.st_uid;
}

Expected<std::string> read_trusted_file(const std::string& path, uid_t owner,
                                        std::size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd) return Error{"cannot open " + path + ": " + clsi::errno_text(errno)};
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return Error{path + " is not a regular file"};
  if (st.st_uid != owner) return Error{path + " is not owned by the store's owner"};
  if (!owned_and_private(st, owner)) return Error{path + " is writable by others"};
  if (static_cast<std::size_t>(st.st_size) > max_bytes) return Error{path + " is too large"};
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{"cannot read " + path + ": " + clsi::errno_text(errno)};
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > max_bytes) return Error{path + " is too large"};
  }
  return text;
}

Expected<bool> check_store_ownership(const Store& store, uid_t me) {
  struct stat st {};
  std::vector<std::string> dirs = {
      store.root(),     store.envs_dir(),        store.root() + "/locks", store.probes_dir(),
      store.keys_dir(), store.tmp_dir(),         store.trash_dir(),       store.failures_dir(),
      store.logs_dir(), store.root() + "/cache", store.pip_cache_dir()};
  for (const auto& d : dirs) {
    if (::lstat(d.c_str(), &st) != 0) {
      // Created by the service with the right owner.
      if (errno == ENOENT || errno == ENOTDIR) continue;
      return Error{"cannot inspect " + d + ": " + clsi::errno_text(errno)};
    }
    // A file, FIFO or symlink of the service's own in a directory's place is
    // replaced by Store::ensure_layout.
    if (!S_ISDIR(st.st_mode) && d != store.root() && st.st_uid == me) continue;
    if (!S_ISDIR(st.st_mode)) return Error{d + " is not a directory"};
    if (!owned_and_private(st, me)) return Error{describe(d, st, me)};
    if (d == store.root()) continue;
    std::error_code ec;
    std::filesystem::directory_iterator it(d, ec);  // skips "." and ".."
    if (ec) return Error{"cannot list " + d + ": " + clsi::errno_text(ec.value())};
    // An error while listing ends the listing, as the end of it does.
    for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      const std::string p = it->path().string();   // d + "/" + the entry's name
      if (::lstat(p.c_str(), &st) != 0) continue;  // gone meanwhile
      if (!owned_and_private(st, me) && !S_ISLNK(st.st_mode)) return Error{describe(p, st, me)};
      if (S_ISLNK(st.st_mode) && st.st_uid != me) return Error{describe(p, st, me)};
    }
  }
  return true;
}

}  // namespace clsi::venv
