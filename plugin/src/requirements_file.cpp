#include "requirements_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "clsi/errno_text.hpp"
#include "clsi/unique_fd.hpp"

namespace clsi::venv {
namespace {

const char* kind_of(mode_t mode) {
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a named pipe";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a regular file";
}

}  // namespace

Expected<std::optional<RequirementsFile>> read_requirements_file(
    const std::string& compile_dir, const std::vector<std::string>& names, std::int64_t max_bytes) {
  UniqueFd dir(::open(compile_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    return Error{"cannot open the compile directory " + compile_dir + ": " +
                 clsi::errno_text(errno)};
  }
  for (const auto& name : names) {
    struct stat st {};
    if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return Error{"./" + name + ": cannot read: " + clsi::errno_text(errno)};
    }
    auto refuse = [&](const std::string& what) -> Expected<std::optional<RequirementsFile>> {
      std::string text = "./" + name + ": refused: ";
      text += what;
      text += " (only a regular file at the project root is read)";
      return Error{std::move(text)};
    };
    if (!S_ISREG(st.st_mode)) return refuse(std::string("it is ") + kind_of(st.st_mode));
    // O_NOFOLLOW and O_NONBLOCK: the entry may have been swapped since fstatat.
    UniqueFd fd(::openat(dir.get(), name.c_str(),
                         O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!fd) {
      if (errno == ELOOP) return refuse("it is a symbolic link");
      return Error{"./" + name + ": cannot read: " + clsi::errno_text(errno)};
    }
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return refuse(std::string("it is ") + kind_of(st.st_mode));
    }
    auto too_big = [&] {
      return Error{"./" + name +
                   ": refused: the file is larger than caps.max_requirements_bytes (" +
                   std::to_string(max_bytes) + " bytes)"};
    };
    if (st.st_size > max_bytes) return too_big();
    RequirementsFile file{name, {}, {}};
    // Read at most max_bytes + 1 (the file may grow after fstat), but never
    // allocate the cap itself: an operator may configure a very large one.
    const auto limit = static_cast<std::uint64_t>(max_bytes) + 1;
    char buf[16 * 1024];
    std::uint64_t got = 0;
    while (got < limit) {
      auto want = static_cast<std::size_t>(std::min<std::uint64_t>(sizeof buf, limit - got));
      ssize_t n = ::read(fd.get(), buf, want);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error{"./" + name + ": cannot read: " + clsi::errno_text(errno)};
      if (n == 0) break;
      file.text.append(buf, static_cast<std::size_t>(n));
      got += static_cast<std::uint64_t>(n);
    }
    if (got > static_cast<std::uint64_t>(max_bytes)) return too_big();
    for (auto later = std::find(names.begin(), names.end(), name) + 1; later != names.end();
         ++later) {
      if (*later != name && ::fstatat(dir.get(), later->c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
        file.ignored.push_back(*later);
    }
    return std::optional<RequirementsFile>(std::move(file));
  }
  return std::optional<RequirementsFile>();
}

}  // namespace clsi::venv
