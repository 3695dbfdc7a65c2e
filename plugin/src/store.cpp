#include "store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

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

// JSON: read on every cache hit, where a YAML parser took 0.2 ms of a fresh
// process's time for these few hundred bytes.
Expected<bool> Store::write_record(const Record& r) const {
  const nlohmann::json j = {{"key", r.key},
                            {"python", r.python},
                            {"python_path", r.python_path},
                            {"pip", r.pip},
                            {"index_url", r.index_url},
                            {"only_binary", r.only_binary},
                            {"built_at", r.built_at},
                            {"build_seconds", r.build_seconds},
                            {"size_bytes", r.size_bytes},
                            {"interpreter_dev", r.interpreter_dev},
                            {"interpreter_ino", r.interpreter_ino},
                            {"requested", r.requested},
                            {"installed", r.installed},
                            {"dists", r.dists}};
  return write_file_atomically(
      record_path(r.key), j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

namespace {

// A record in YAML, as services before the JSON one wrote it.
std::optional<Record> parse_yaml_record(const std::string& text) {
  try {
    YAML::Node n = YAML::Load(text);
    if (!n.IsMap()) return std::nullopt;
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
    if (!n["requested"].IsSequence()) return std::nullopt;
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

template <class T>
void take(const nlohmann::json& j, const char* name, T& into) {
  if (auto it = j.find(name); it != j.end() && !it->is_null()) into = it->get<T>();
}

}  // namespace

std::optional<Record> parse_record(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] != '{') return parse_yaml_record(text);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("requested") || !j["requested"].is_array())
    return std::nullopt;
  try {
    Record r;
    take(j, "key", r.key);
    take(j, "python", r.python);
    take(j, "python_path", r.python_path);
    take(j, "pip", r.pip);
    take(j, "index_url", r.index_url);
    take(j, "only_binary", r.only_binary);
    take(j, "built_at", r.built_at);
    take(j, "build_seconds", r.build_seconds);
    take(j, "size_bytes", r.size_bytes);
    take(j, "interpreter_dev", r.interpreter_dev);
    take(j, "interpreter_ino", r.interpreter_ino);
    take(j, "requested", r.requested);
    take(j, "installed", r.installed);
    take(j, "dists", r.dists);
    return r;
  } catch (const nlohmann::json::exception&) {  // a value of the wrong type
    return std::nullopt;
  }
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
  return parse_record(*text);
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
