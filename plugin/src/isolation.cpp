#include "isolation.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "clsi/errno_text.hpp"
#include "clsi/unique_fd.hpp"

namespace clsi::venv {

Expected<PrivateWorkdir> PrivateWorkdir::create(const std::string& parent,
                                                const std::string& prefix) {
  std::string tmpl = parent + "/" + prefix + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return Error{"cannot create a private directory in " + parent + ": " + clsi::errno_text(errno)};
  }
  PrivateWorkdir w;
  w.root_ = tmpl;
  for (const char* sub : {"/home", "/tmp", "/cwd"}) {
    if (::mkdir((w.root_ + sub).c_str(), 0700) != 0) {
      return Error{"cannot create " + w.root_ + sub + ": " + clsi::errno_text(errno)};
    }
  }
  return w;
}

PrivateWorkdir::PrivateWorkdir(PrivateWorkdir&& other) noexcept
    : root_(std::exchange(other.root_, {})) {}

PrivateWorkdir::~PrivateWorkdir() {
  if (root_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

std::vector<std::string> isolated_environment(const PrivateWorkdir& w) {
  return {
      "PATH=/usr/local/bin:/usr/bin:/bin",
      "LANG=C.UTF-8",
      "LC_ALL=C.UTF-8",
      "HOME=" + w.home(),
      "TMPDIR=" + w.tmp(),
      "XDG_CONFIG_HOME=" + w.home() + "/.config",
      "XDG_CACHE_HOME=" + w.home() + "/.cache",
      "PIP_CONFIG_FILE=/dev/null",
      "PYTHONNOUSERSITE=1",
      "PYTHONUNBUFFERED=1",
  };
}

Expected<bool> write_file_atomically(const std::string& path, const std::string& content) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  std::string tmp = path + ".tmp-XXXXXX";
  UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd) return Error{"cannot create " + tmp + ": " + clsi::errno_text(errno)};
  auto fail = [&](const char* what) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Error{std::string("cannot ") + what + " " + path + ": " + clsi::errno_text(err)};
  };
  std::size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("write");
    off += static_cast<std::size_t>(n);
  }
  if (::fchmod(fd.get(), 0644) != 0 || ::fsync(fd.get()) != 0) return fail("sync");
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("rename into place");
  UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d) ::fsync(d.get());
  return true;
}

}  // namespace clsi::venv
