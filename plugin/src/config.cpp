#include "config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <set>
#include <vector>

#include "clsi/errno_text.hpp"

namespace clsi::venv {
namespace {

struct ConfigError {
  std::string message;
};

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw ConfigError{file_ + ": python_venv." + key + ": " + what};
  }

  void only_keys(const YAML::Node& map, const std::string& prefix,
                 const std::set<std::string>& known) const {
    if (!map.IsMap()) fail(prefix.empty() ? "(section)" : prefix, "expected a mapping");
    for (const auto& kv : map) {
      auto k = kv.first.as<std::string>();
      if (!known.count(k)) {
        std::string what = file_ + ": unknown key python_venv.";
        if (!prefix.empty()) what += prefix + ".";
        what += k;
        what += " (known: " + join(known) + ")";
        throw ConfigError{std::move(what)};
      }
    }
  }

  void get(const YAML::Node& n, const std::string& key, bool& out) const {
    if (!n) return;
    auto s = scalar(n, key, "true or false");
    if (s == "true" || s == "True" || s == "yes")
      out = true;
    else if (s == "false" || s == "False" || s == "no")
      out = false;
    else
      fail(key, "expected true or false, got '" + s + "'");
  }

  template <class Int>
  void get_int(const YAML::Node& n, const std::string& key, Int& out, Int min) const {
    if (!n) return;
    auto s = scalar(n, key, "an integer");
    try {
      size_t used = 0;
      long long v = std::stoll(s, &used, 10);
      if (used != s.size()) throw std::invalid_argument(s);
      if (v < static_cast<long long>(min)) {
        fail(key, "must be at least " + std::to_string(min) + ", got " + s);
      }
      if (v > static_cast<long long>(std::numeric_limits<Int>::max())) {
        fail(key,
             "must be at most " + std::to_string(std::numeric_limits<Int>::max()) + ", got " + s);
      }
      out = static_cast<Int>(v);
    } catch (const std::out_of_range&) {
      fail(key, "the number " + s + " is out of range");
    } catch (const std::logic_error&) {
      fail(key, "expected an integer, got '" + s + "'");
    }
  }

  void get(const YAML::Node& n, const std::string& key, std::string& out) const {
    if (!n) return;
    out = scalar(n, key, "a string");
    if (out.empty()) fail(key, "must not be empty");
  }

  void get(const YAML::Node& n, const std::string& key, std::vector<std::uint32_t>& out) const {
    if (!n) return;
    if (!n.IsSequence()) fail(key, "expected a list of numeric ids");
    out.clear();
    for (const auto& item : n) {
      std::uint32_t id = 0;
      get_int(item, key, id, std::uint32_t{0});
      out.push_back(id);
    }
  }

  void get(const YAML::Node& n, const std::string& key, std::vector<std::string>& out) const {
    if (!n) return;
    if (!n.IsSequence()) fail(key, "expected a list of strings");
    out.clear();
    for (const auto& item : n) {
      if (!item.IsScalar()) fail(key, "expected a list of strings");
      out.push_back(item.as<std::string>());
    }
  }

 private:
  std::string scalar(const YAML::Node& n, const std::string& key, const char* expected) const {
    if (!n.IsScalar()) fail(key, std::string("expected ") + expected);
    return n.Scalar();
  }
  static std::string join(const std::set<std::string>& s) {
    std::string out;
    for (const auto& k : s)
      out += (out.empty() ? "" : ", ") + k;
    return out;
  }
  std::string file_;
};

// The file's text, or why it cannot be had, in words that say what to fix:
// missing, a directory, not readable by this user.
Expected<std::string> read_config_text(const std::string& path) {
  const std::string what = path + ": cannot read the plugin configuration: ";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) return Error{what + "no such file"};
    return Error{what + clsi::errno_text(err)};
  }
  if (S_ISDIR(st.st_mode)) return Error{what + "it is a directory, not a file"};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string why = what + clsi::errno_text(err);
    if (err == EACCES) {
      char mode[8];
      (void)std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      why += " (the file is mode " + std::string(mode) + ", owner uid " +
             std::to_string(st.st_uid) + " gid " + std::to_string(st.st_gid) +
             "; this process runs as uid " + std::to_string(::geteuid()) + ")";
    }
    return Error{why};
  }
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Error{what + clsi::errno_text(err)};
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

// Edit distance, for "did you mean python_venv?".
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// A section name that is probably python_venv mistyped: the same letters
// but for case and punctuation (pythonvenv, Python-Venv), or a few edits away.
bool looks_like_python_venv(const std::string& name) {
  std::string letters;
  for (unsigned char ch : name) {
    if (std::isalnum(ch)) letters += static_cast<char>(std::tolower(ch));
  }
  return letters == "pythonvenv" || edit_distance(name, "python_venv") <= 3;
}

// A mapping without a python_venv section: the plugin would run with the
// defaults (off) while the operator thinks it configured, so it is an error
// that says what the file has instead.
std::string missing_section_error(const std::string& path, const YAML::Node& root) {
  std::string found;
  std::string close;
  for (const auto& kv : root) {
    const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : "(a non-scalar key)";
    found += (found.empty() ? "" : ", ") + name;
    if (close.empty() && looks_like_python_venv(name)) close = name;
  }
  std::string message = path + ": no python_venv section (the file has: " + found + ")";
  if (!close.empty()) message += "; did you mean python_venv instead of " + close + "?";
  return message;
}

bool parse_bool_env(const char* v, bool& out) {
  std::string s(v);
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "true" || s == "1" || s == "yes" || s == "on")
    out = true;
  else if (s == "false" || s == "0" || s == "no" || s == "off")
    out = false;
  else
    return false;
  return true;
}

void validate(const Config& c, const Reader& r) {
  if (c.requirements_files.empty()) r.fail("requirements_files", "must name at least one file");
  for (const auto& f : c.requirements_files) {
    if (f.empty() || f == "." || f == ".." || f.find('/') != std::string::npos ||
        f.find('\0') != std::string::npos) {
      r.fail("requirements_files", "'" + f + "' must be a plain file name at the project root");
    }
  }
  if (c.venvs_dir.front() != '/') r.fail("venvs_dir", "must be an absolute path");
  if (c.builder != "auto" && c.builder != "inline" && c.builder.front() != '/') {
    r.fail("builder", "must be auto, inline or an absolute path, not '" + c.builder + "'");
  }
  if (c.base_python.front() != '/') r.fail("base_python", "must be an absolute path");
  if (c.service.socket.front() != '/') r.fail("service.socket", "must be an absolute path");
  if (c.service.metrics_address != "off" &&
      c.service.metrics_address.find(':') == std::string::npos) {
    r.fail("service.metrics_address", "must be HOST:PORT (e.g. 127.0.0.1:9477) or off, not '" +
                                          c.service.metrics_address + "'");
  }
  if (!c.service.metrics_textfile.empty() && c.service.metrics_textfile.front() != '/')
    r.fail("service.metrics_textfile", "must be an absolute path");
  auto scheme = c.index_url.substr(0, c.index_url.find("://"));
  if (c.index_url.find("://") == std::string::npos ||
      (scheme != "https" && scheme != "http" && scheme != "file")) {
    r.fail("index_url", "must be an http(s):// or file:// URL, got '" + c.index_url + "'");
  }
}

}  // namespace

Expected<Config> load_config(const char* path, const GetEnv& getenv) {
  Config c;
  c.source = (path && *path) ? path : "(built-in defaults)";
  if (path && *path) {
    char real[PATH_MAX];
    c.path = ::realpath(path, real) ? real : path;
  }
  Reader r(c.source);
  try {
    if (path && *path) {
      auto text = read_config_text(path);
      if (!text) return Error{text.error()};
      YAML::Node root;
      try {
        root = YAML::Load(*text);
      } catch (const YAML::Exception& e) {
        return Error{std::string(path) + ": not valid YAML: " + e.what()};
      }
      YAML::Node s = root.IsMap() ? root["python_venv"] : YAML::Node();
      if (root.IsMap() && root.size() > 0 && !s) return Error{missing_section_error(path, root)};
      if (s && !s.IsNull()) {
        r.only_keys(s, "",
                    {"enabled", "venvs_dir", "base_python", "requirements_files", "index_url",
                     "only_binary", "require_hashes", "render_reserve_s", "retry_failed_after_s",
                     "builder", "caps", "eviction", "service"});
        r.get(s["enabled"], "enabled", c.enabled);
        r.get(s["venvs_dir"], "venvs_dir", c.venvs_dir);
        r.get(s["base_python"], "base_python", c.base_python);
        r.get(s["requirements_files"], "requirements_files", c.requirements_files);
        r.get(s["index_url"], "index_url", c.index_url);
        r.get(s["only_binary"], "only_binary", c.only_binary);
        r.get(s["require_hashes"], "require_hashes", c.require_hashes);
        r.get_int(s["render_reserve_s"], "render_reserve_s", c.render_reserve_s, 0);
        r.get_int(s["retry_failed_after_s"], "retry_failed_after_s", c.retry_failed_after_s, 0);
        r.get(s["builder"], "builder", c.builder);
        if (auto caps = s["caps"]; caps && !caps.IsNull()) {
          r.only_keys(caps, "caps",
                      {"install_timeout_s", "max_venv_mb", "max_packages", "max_requirements_bytes",
                       "max_requirement_lines", "max_venv_files"});
          r.get_int(caps["install_timeout_s"], "caps.install_timeout_s", c.caps.install_timeout_s,
                    1);
          r.get_int(caps["max_venv_mb"], "caps.max_venv_mb", c.caps.max_venv_mb, std::int64_t{1});
          r.get_int(caps["max_packages"], "caps.max_packages", c.caps.max_packages, 1);
          r.get_int(caps["max_requirements_bytes"], "caps.max_requirements_bytes",
                    c.caps.max_requirements_bytes, std::int64_t{1});
          r.get_int(caps["max_requirement_lines"], "caps.max_requirement_lines",
                    c.caps.max_requirement_lines, 1);
          r.get_int(caps["max_venv_files"], "caps.max_venv_files", c.caps.max_venv_files,
                    std::int64_t{1});
        }
        if (auto ev = s["eviction"]; ev && !ev.IsNull()) {
          r.only_keys(ev, "eviction",
                      {"max_total_mb", "gc_after_build", "gc_interval_s", "min_free_mb",
                       "unused_for_s", "max_pip_cache_mb"});
          r.get(ev["gc_after_build"], "eviction.gc_after_build", c.eviction.gc_after_build);
          r.get_int(ev["max_total_mb"], "eviction.max_total_mb", c.eviction.max_total_mb,
                    std::int64_t{0});
          r.get_int(ev["gc_interval_s"], "eviction.gc_interval_s", c.eviction.gc_interval_s, 0);
          r.get_int(ev["min_free_mb"], "eviction.min_free_mb", c.eviction.min_free_mb,
                    std::int64_t{0});
          r.get_int(ev["unused_for_s"], "eviction.unused_for_s", c.eviction.unused_for_s,
                    std::int64_t{0});
          r.get_int(ev["max_pip_cache_mb"], "eviction.max_pip_cache_mb",
                    c.eviction.max_pip_cache_mb, std::int64_t{0});
        }
        if (auto sv = s["service"]; sv && !sv.IsNull()) {
          r.only_keys(sv, "service",
                      {"socket", "allowed_uids", "allowed_gids", "max_parallel_builds",
                       "connect_timeout_ms", "lease_gid", "metrics_address", "metrics_textfile",
                       "metrics_interval_s", "prestart_pip"});
          r.get(sv["socket"], "service.socket", c.service.socket);
          r.get(sv["allowed_uids"], "service.allowed_uids", c.service.allowed_uids);
          r.get(sv["allowed_gids"], "service.allowed_gids", c.service.allowed_gids);
          r.get_int(sv["max_parallel_builds"], "service.max_parallel_builds",
                    c.service.max_parallel_builds, 1);
          r.get_int(sv["connect_timeout_ms"], "service.connect_timeout_ms",
                    c.service.connect_timeout_ms, 1);
          r.get_int(sv["lease_gid"], "service.lease_gid", c.service.lease_gid, std::int64_t{-1});
          r.get(sv["metrics_address"], "service.metrics_address", c.service.metrics_address);
          // "" (the default) is allowed: no textfile.
          if (auto t = sv["metrics_textfile"]; t && !t.IsNull()) {
            if (!t.IsScalar()) r.fail("service.metrics_textfile", "expected a path or \"\"");
            c.service.metrics_textfile = t.Scalar();
          }
          r.get_int(sv["metrics_interval_s"], "service.metrics_interval_s",
                    c.service.metrics_interval_s, 1);
          r.get(sv["prestart_pip"], "service.prestart_pip", c.service.prestart_pip);
        }
      } else if (root && !root.IsNull() && !root.IsMap()) {
        return Error{std::string(path) + ": expected a mapping with a python_venv section"};
      }
    }
    if (const char* v = getenv("OVERLEAF_ENABLE_PROJECT_PYTHON_VENV"); v && *v) {
      if (!parse_bool_env(v, c.enabled)) {
        return Error{
            std::string("OVERLEAF_ENABLE_PROJECT_PYTHON_VENV: expected true, false, 1 or 0 (or "
                        "yes, no, on, off), got '") +
            v + "' (it overrides python_venv.enabled)"};
      }
    }
    if (const char* v = getenv("PYTHON_VENVS_DIR"); v && *v) {
      if (v[0] != '/') {
        return Error{std::string("PYTHON_VENVS_DIR: must be an absolute path, got '") + v +
                     "' (it overrides python_venv.venvs_dir)"};
      }
      c.venvs_dir = v;
    }
    validate(c, r);
  } catch (const ConfigError& e) {
    return Error{e.message};
  } catch (const YAML::Exception& e) {
    return Error{c.source + ": " + e.what()};
  }
  return c;
}

}  // namespace clsi::venv
