#include "store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "clsi/errno_text.hpp"
#include "clsi/unique_fd.hpp"
#include "isolation.hpp"

namespace fs = std::filesystem;

namespace clsi::venv {
namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

bool is_store_key(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

Expected<bool> Store::ensure_layout() const {
  // Every directory, every time: one that was deleted is made again (a
  // mkdir of one that exists is a cheap EEXIST), and a file, FIFO or symlink
  // in a directory's place is removed first (the root is the operator's).
  for (const auto& d :
       {root_, envs_dir(), root_ + "/locks", probes_dir(), tmp_dir(), trash_dir(), failures_dir(),
        logs_dir(), keys_dir(), dists_dir(), root_ + "/cache", pip_cache_dir()}) {
    struct stat st {};
    if (d != root_ && ::lstat(d.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
      (void)::unlink(d.c_str());
    if (::mkdir(d.c_str(), d == pip_cache_dir() ? 0700 : 0755) != 0 && errno != EEXIST) {
      return Error{"cannot create the venv store directory " + d + ": " + clsi::errno_text(errno)};
    }
  }
  return true;
}

bool Store::is_complete(const std::string& key) const {
  struct stat st {};
  return ::stat(record_path(key).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Expected<bool> Store::remove_env(const std::string& key) const {
  // First: the venv stops being "complete". A directory in the record's
  // place would keep the next record from being renamed into it.
  if (::unlink(record_path(key).c_str()) != 0 && errno == EISDIR) {
    std::error_code ec;
    fs::remove_all(record_path(key), ec);
  }
  std::string dir = env_dir(key);
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return true;
  std::string dest = trash_dir() + "/" + key + "-XXXXXX";
  if (::mkdtemp(dest.data()) == nullptr) {
    return Error{"cannot move " + dir + " out of the way: " + clsi::errno_text(errno)};
  }
  std::string target = dest + "/env";
  if (::rename(dir.c_str(), target.c_str()) != 0) {
    int err = errno;
    ::rmdir(dest.c_str());
    return Error{"cannot move " + dir + " out of the way: " + clsi::errno_text(err)};
  }
  std::error_code ec;
  fs::remove_all(dest, ec);
  if (ec) return Error{"cannot delete " + dest + ": " + ec.message()};
  return true;
}

Expected<bool> Store::write_record(const Record& r) const {
  std::string y;
  y += "key: " + r.key + "\n";
  y += "python: " + quoted(r.python) + "\n";
  y += "python_path: " + quoted(r.python_path) + "\n";
  y += "pip: " + quoted(r.pip) + "\n";
  y += "index_url: " + quoted(r.index_url) + "\n";
  y += std::string("only_binary: ") + (r.only_binary ? "true" : "false") + "\n";
  y += "built_at: " + std::to_string(r.built_at) + "\n";
  y += "build_seconds: " + std::to_string(r.build_seconds) + "\n";
  y += "size_bytes: " + std::to_string(r.size_bytes) + "\n";
  y += "interpreter_dev: " + std::to_string(r.interpreter_dev) + "\n";
  y += "interpreter_ino: " + std::to_string(r.interpreter_ino) + "\n";
  y += "requested:\n";
  for (const auto& s : r.requested)
    y += "  - " + quoted(s) + "\n";
  y += "installed:\n";
  for (const auto& s : r.installed)
    y += "  - " + quoted(s) + "\n";
  y += "dists:\n";
  for (const auto& s : r.dists)
    y += "  - " + quoted(s) + "\n";
  return write_file_atomically(record_path(r.key), y);
}

// A small regular file of the store, read without following a symlink and
// without blocking on a FIFO planted in its place.
std::optional<std::string> read_small_regular_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20))
    return std::nullopt;
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) return text;
    text.append(buf, static_cast<std::size_t>(n));
  }
}

std::optional<Record> Store::read_record(const std::string& key) const {
  auto text = read_small_regular_file(record_path(key));
  if (!text) return std::nullopt;
  try {
    YAML::Node n = YAML::Load(*text);
    Record r;
    r.key = n["key"].as<std::string>("");
    r.python = n["python"].as<std::string>("");
    r.python_path = n["python_path"].as<std::string>("");
    r.pip = n["pip"].as<std::string>("");
    r.index_url = n["index_url"].as<std::string>("");
    r.only_binary = n["only_binary"].as<bool>(true);
    r.built_at = n["built_at"].as<std::int64_t>(0);
    r.build_seconds = n["build_seconds"].as<double>(0);
    r.size_bytes = n["size_bytes"].as<std::int64_t>(0);
    r.interpreter_dev = n["interpreter_dev"].as<std::uint64_t>(0);
    r.interpreter_ino = n["interpreter_ino"].as<std::uint64_t>(0);
    for (const auto& s : n["requested"])
      r.requested.push_back(s.as<std::string>());
    for (const auto& s : n["installed"])
      r.installed.push_back(s.as<std::string>());
    for (const auto& s : n["dists"])
      r.dists.push_back(s.as<std::string>());
    return r;
  } catch (const YAML::Exception&) {
    return std::nullopt;
  }
}

void Store::touch(const std::string& key) const {
  ::utimensat(AT_FDCWD, record_path(key).c_str(), nullptr, 0);
}

std::vector<std::string> Store::keys() const {
  std::set<std::string> keys;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(envs_dir(), ec)) {
    std::string name = e.path().filename().string();
    if (auto dot = name.find('.'); dot != std::string::npos) name.resize(dot);
    if (is_store_key(name)) keys.insert(name);
  }
  return {keys.begin(), keys.end()};
}

Expected<bool> Store::remember_failure(const std::string& key, const std::string& reason) const {
  std::string one_line = reason;
  for (auto& c : one_line)
    c = (c == '\n' || c == '\r') ? ' ' : c;
  return write_file_atomically(failures_dir() + "/" + key,
                               std::to_string(std::time(nullptr)) + "\n" + one_line + "\n");
}

std::optional<Failure> Store::recent_failure(const std::string& key, std::int64_t max_age_s) const {
  auto text = read_small_regular_file(failures_dir() + "/" + key);
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  Failure f;
  std::string at;
  if (!std::getline(in, at) || !std::getline(in, f.reason)) return std::nullopt;
  f.at = std::atoll(at.c_str());
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  // A stamp from the future (clock skew, a forged file) would block the key
  // for good: it is ignored.
  if (max_age_s <= 0 || f.at <= 0 || f.at > now + 60 || now - f.at >= max_age_s)
    return std::nullopt;
  f.retry_at = f.at + max_age_s;
  return f;
}

void Store::forget_failure(const std::string& key) const {
  ::unlink((failures_dir() + "/" + key).c_str());
}

void Store::append_event(std::string_view kind, const std::string& key, double value) const {
  char line[256];
  int n = std::snprintf(line, sizeof line, "%lld %.*s %s %.3f\n",
                        static_cast<long long>(std::time(nullptr)), static_cast<int>(kind.size()),
                        kind.data(), key.c_str(), value);
  if (n <= 0 || n >= static_cast<int>(sizeof line)) return;
  UniqueFd fd(::open(events_path().c_str(),
                     O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644));
  struct stat st {};
  // Statistics are best effort; nothing waits for them, nor writes anything
  // but a regular file.
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return;
  (void)!::write(fd.get(), line, static_cast<std::size_t>(n));
}

std::string human_size(std::int64_t bytes) {
  char buf[32];
  // Both fit: an int64 is at most 19 digits, as KB or as MB.
  if (bytes < std::int64_t{1024} * 1024) {
    (void)std::snprintf(buf, sizeof buf, "%lld KB", static_cast<long long>((bytes + 1023) / 1024));
  } else {
    (void)std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  }
  return buf;
}

std::string format_utc(std::int64_t unix_seconds, const char* format) {
  if (unix_seconds <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  // 0: the text does not fit (or is empty), and buf's contents are unspecified.
  if (std::strftime(buf, sizeof buf, format, &tm) == 0) return "-";
  return buf;
}

std::int64_t disk_usage(const std::string& path) {
  std::int64_t total = 0;
  std::error_code ec;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  total += static_cast<std::int64_t>(st.st_blocks) * 512;
  if (!S_ISDIR(st.st_mode)) return total;
  for (auto it = fs::recursive_directory_iterator(
           path, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (::lstat(it->path().c_str(), &st) == 0)
      total += static_cast<std::int64_t>(st.st_blocks) * 512;
  }
  return total;
}

}  // namespace clsi::venv
