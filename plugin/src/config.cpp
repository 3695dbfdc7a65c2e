#include "config.hpp"

#include <yaml-cpp/yaml.h>

#include <climits>
#include <cstdlib>
#include <limits>
#include <set>

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
      YAML::Node root;
      try {
        root = YAML::LoadFile(path);
      } catch (const YAML::BadFile&) {
        return Error{std::string(path) + ": cannot read the plugin configuration"};
      } catch (const YAML::Exception& e) {
        return Error{std::string(path) + ": not valid YAML: " + e.what()};
      }
      YAML::Node s = root.IsMap() ? root["python_venv"] : YAML::Node();
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
          r.only_keys(ev, "eviction", {"max_total_mb", "gc_after_build", "gc_interval_s"});
          r.get(ev["gc_after_build"], "eviction.gc_after_build", c.eviction.gc_after_build);
          r.get_int(ev["max_total_mb"], "eviction.max_total_mb", c.eviction.max_total_mb,
                    std::int64_t{0});
          r.get_int(ev["gc_interval_s"], "eviction.gc_interval_s", c.eviction.gc_interval_s, 0);
        }
        if (auto sv = s["service"]; sv && !sv.IsNull()) {
          r.only_keys(sv, "service",
                      {"socket", "allowed_uids", "allowed_gids", "max_parallel_builds",
                       "connect_timeout_ms", "lease_gid"});
          r.get(sv["socket"], "service.socket", c.service.socket);
          r.get(sv["allowed_uids"], "service.allowed_uids", c.service.allowed_uids);
          r.get(sv["allowed_gids"], "service.allowed_gids", c.service.allowed_gids);
          r.get_int(sv["max_parallel_builds"], "service.max_parallel_builds",
                    c.service.max_parallel_builds, 1);
          r.get_int(sv["connect_timeout_ms"], "service.connect_timeout_ms",
                    c.service.connect_timeout_ms, 1);
          r.get_int(sv["lease_gid"], "service.lease_gid", c.service.lease_gid, std::int64_t{-1});
        }
      } else if (root && !root.IsNull() && !root.IsMap()) {
        return Error{std::string(path) + ": expected a mapping with a python_venv section"};
      }
    }
    if (const char* v = getenv("OVERLEAF_ENABLE_PROJECT_PYTHON_VENV"); v && *v) {
      if (!parse_bool_env(v, c.enabled)) {
        return Error{
            std::string(
                "OVERLEAF_ENABLE_PROJECT_PYTHON_VENV: expected true, false, 1 or 0, got '") +
            v + "'"};
      }
    }
    if (const char* v = getenv("PYTHON_VENVS_DIR"); v && *v) c.venvs_dir = v;
    validate(c, r);
  } catch (const ConfigError& e) {
    return Error{e.message};
  } catch (const YAML::Exception& e) {
    return Error{c.source + ": " + e.what()};
  }
  return c;
}

}  // namespace clsi::venv
