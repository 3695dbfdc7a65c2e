// project-bin: a compile-runner plugin that puts the project's own bin/
// directory first on the command's PATH, so a project can ship small tools
// (a filter, a script its build calls) that its compile finds by name.
//
// It shows that the ABI is not about Python: it uses the generic parts of
// ABI 1.1 (its own configuration file, CLSI_ENV_PREPEND and the read of the
// command's environment, the permission set) and nothing of python-venv.
//
// The directory is untrusted (anyone who can edit the project writes it),
// so it is used only when it resolves, through every symbolic link, to a
// directory inside the compile directory; what goes on PATH is that
// resolved path. A bin/ that leaves the project is refused, with a line in
// output.log, and the compile runs with PATH unchanged. The plugin never
// fails a compile.
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "clsi/plugin_glue.hpp"

#ifndef PROJECT_BIN_VERSION
#define PROJECT_BIN_VERSION "0"
#endif

namespace fs = std::filesystem;

namespace {

const std::string kPrefix = "[project-bin] ";

// The configuration file: `key: value` lines, `#` comments.
//   enabled: true|false          (true)
//   dir: bin                     the directory, relative to the compile directory
//   require_permission: NAME     only for compiles granted NAME ("": every compile)
struct Config {
  bool enabled = true;
  std::string dir = "bin";
  std::string require_permission;
};

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

Config read_config(const char* path) {
  Config cfg;
  if (path == nullptr || *path == '\0') return cfg;
  std::ifstream in(path);
  if (!in) throw std::runtime_error(std::string("cannot read the configuration file ") + path);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    line = trim(line);
    if (line.empty()) continue;
    const std::string where = std::string(path) + ":" + std::to_string(lineno) + ": ";
    auto colon = line.find(':');
    if (colon == std::string::npos) throw std::runtime_error(where + "expected 'key: value'");
    std::string key = trim(line.substr(0, colon));
    std::string value = trim(line.substr(colon + 1));
    if (key == "enabled") {
      if (value != "true" && value != "false")
        throw std::runtime_error(where + "enabled must be true or false, not '" + value + "'");
      cfg.enabled = value == "true";
    } else if (key == "dir") {
      fs::path p(value);
      bool ok = !value.empty() && p.is_relative() &&
                std::none_of(p.begin(), p.end(), [](const fs::path& c) { return c == ".."; });
      if (!ok)
        throw std::runtime_error(where + "dir must be a relative path inside the project, not '" +
                                 value + "'");
      cfg.dir = p.lexically_normal().string();
      while (cfg.dir.size() > 1 && cfg.dir.back() == '/')
        cfg.dir.pop_back();
    } else if (key == "require_permission") {
      cfg.require_permission = value;
    } else {
      throw std::runtime_error(where + "unknown key '" + key +
                               "' (known: enabled, dir, require_permission)");
    }
  }
  return cfg;
}

// True when `p` is `root` or below it (both canonical).
bool inside(const fs::path& p, const fs::path& root) {
  auto [r, q] = std::mismatch(root.begin(), root.end(), p.begin(), p.end());
  return r == root.end();
}

// The names of the executable regular files in `dir`, sorted.
std::vector<std::string> programs(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    struct stat st {};
    // stat follows a link in bin/: a tool may be a link to a file elsewhere
    // in the project. What the command may run is the sandbox's business.
    if (::stat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0)
      names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string describe(const std::vector<std::string>& names) {
  if (names.empty()) return "no programs yet";
  std::ostringstream out;
  out << names.size() << (names.size() == 1 ? " program: " : " programs: ");
  const std::size_t shown = std::min<std::size_t>(names.size(), 5);
  for (std::size_t i = 0; i < shown; ++i)
    out << (i ? ", " : "") << names[i];
  if (shown < names.size()) out << ", ...";
  return out.str();
}

class ProjectBin {
 public:
  explicit ProjectBin(Config cfg) : cfg_(std::move(cfg)) {}

  static std::unique_ptr<ProjectBin> create(const clsi::HostServices& host,
                                            const char* config_path) {
    auto cfg = read_config(config_path);
    host.log(CLSI_LOG_INFO, std::string("project-bin ") + PROJECT_BIN_VERSION +
                                (cfg.enabled ? ": puts ./" + cfg.dir + " first on PATH"
                                             : ": disabled by its configuration"));
    return std::make_unique<ProjectBin>(std::move(cfg));
  }

  clsi_status pre_compile(clsi::CompileContext& ctx, void** compile_ptr) const {
    *compile_ptr = nullptr;
    if (!cfg_.enabled) return CLSI_STATUS_NOTHING_TO_DO;
    const std::string shown = "./" + cfg_.dir;
    std::error_code ec;
    const fs::path root = fs::canonical(fs::path(ctx.compile_dir()), ec);
    if (ec) {
      ctx.log(CLSI_LOG_WARNING, "cannot resolve the compile directory: " + ec.message());
      return CLSI_STATUS_NOTHING_TO_DO;
    }
    const fs::path candidate = root / cfg_.dir;
    auto st = fs::symlink_status(candidate, ec);
    if (ec || st.type() == fs::file_type::not_found) return CLSI_STATUS_NOTHING_TO_DO;

    auto refuse = [&](const std::string& why) {
      ctx.append(kPrefix + shown + " " + why + "; PATH is left unchanged");
      return CLSI_STATUS_FELL_BACK;
    };
    if (!cfg_.require_permission.empty() && !ctx.has_permission(cfg_.require_permission))
      return refuse("is not used: this compile lacks the permission '" + cfg_.require_permission +
                    "'");
    const fs::path real = fs::canonical(candidate, ec);
    // Never name where a link leads: it may be a path of the compile host.
    if (ec) return refuse("is a symbolic link that leads nowhere (" + ec.message() + ")");
    if (!inside(real, root)) return refuse("leads outside the project (a symbolic link)");
    if (!fs::is_directory(real, ec)) return refuse("is not a directory");
    const std::string dir = real.string();
    if (dir.find(':') != std::string::npos)
      return refuse("cannot be put on PATH: its path contains ':'");

    bool done = false;
    if (ctx.supports_env_adjust()) {
      done = ctx.adjust_env(CLSI_ENV_PREPEND, "PATH", dir);
    } else {
      // An ABI 1.0 host cannot say what PATH the command gets: assume it is
      // the host's own, as clsi-runner's is.
      const char* path = std::getenv("PATH");  // NOLINT(concurrency-mt-unsafe): read only
      done = ctx.set_env("PATH", path && *path ? dir + ":" + path : dir);
    }
    if (!done) return refuse("could not be put on PATH: the host refused the change");
    ctx.append(kPrefix + "putting " + shown + " first on PATH (" + describe(programs(real)) + ")");
    return CLSI_STATUS_OK;
  }

  clsi_status post_compile(clsi::CompileContext&, void*, const clsi_compile_result_v1&) const {
    return CLSI_STATUS_NOTHING_TO_DO;
  }

 private:
  Config cfg_;
};

}  // namespace

CLSI_DEFINE_PLUGIN_ENTRY(ProjectBin, "project-bin", PROJECT_BIN_VERSION)
