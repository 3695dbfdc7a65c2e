#include "local_wheel.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "clsi/errno_text.hpp"
#include "clsi/unique_fd.hpp"
#include "digest.hpp"

namespace clsi::venv {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> local_path_of_url(const std::string& url) {
  static const std::string kScheme = "file://";
  if (url.compare(0, kScheme.size(), kScheme) != 0) return std::nullopt;
  std::string rest = url.substr(kScheme.size());
  if (rest.compare(0, 9, "localhost") == 0) rest.erase(0, 9);
  if (rest.empty() || rest[0] != '/') return std::nullopt;  // another host, or none
  if (rest.find_first_of("?#") != std::string::npos) return std::nullopt;
  std::string path;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] != '%') {
      path += rest[i];
      continue;
    }
    if (i + 2 >= rest.size()) return std::nullopt;
    const int hi = hex_value(rest[i + 1]), lo = hex_value(rest[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    path += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  if (path.find('\0') != std::string::npos) return std::nullopt;
  return path;
}

Expected<LocalWheel> copy_local_wheel(const std::string& from, const std::string& to,
                                      const std::string& sha256_hex) {
  UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  struct stat st {};
  if (!in || ::fstat(in.get(), &st) != 0)
    return Error{"cannot read " + from + ": " + clsi::errno_text(errno)};
  if (!S_ISREG(st.st_mode)) return Error{from + " is not a regular file"};
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out) return Error{"cannot write " + to + ": " + clsi::errno_text(errno)};
  auto failed = [&](const std::string& what) -> Expected<LocalWheel> {
    const int e = errno;
    (void)::unlink(to.c_str());
    return Error{what + ": " + clsi::errno_text(e)};
  };
  Sha256 hash;
  std::vector<char> buf(std::size_t{1} << 20);
  for (;;) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failed("cannot read " + from);
    if (n == 0) break;
    hash.update(buf.data(), static_cast<std::size_t>(n));
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(out.get(), buf.data() + done, static_cast<std::size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return failed("cannot write " + to);
      done += w;
    }
  }
  LocalWheel got;
  if (to_hex(hash.finish()) != sha256_hex) {
    (void)::unlink(to.c_str());
    got.mismatch = true;
    return got;
  }
  got.path = to;
  return got;
}

}  // namespace clsi::venv
