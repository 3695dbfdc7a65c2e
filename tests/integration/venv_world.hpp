// A store, a package index and projects, for end-to-end tests through
// clsi-runner with real python, real pip and a real index.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store.hpp"
#include "test_env.hpp"

namespace testenv {

// Packages no test machine has seen: alpha depends on beta; gamma stands alone;
// bulky, bulkier and bulkiest carry 3 MB each (venvs that share one share its files).
inline const char* const kDefaultPackages = R"([
  {"name": "alpha", "version": "1.0", "requires": ["beta>=2"],
   "files": {"alpha/__init__.py": "import beta\nMESSAGE = 'alpha ' + beta.VERSION\n"}},
  {"name": "beta", "version": "2.1",
   "files": {"beta/__init__.py": "VERSION = '2.1'\n"}},
  {"name": "gamma", "version": "0.3",
   "files": {"gamma/__init__.py": "MESSAGE = 'gamma here'\n"}},
  {"name": "bulky", "version": "1.0",
   "files": {"bulky/__init__.py": "X = 1\n"}, "pad_bytes": 3000000},
  {"name": "bulkier", "version": "1.0",
   "files": {"bulkier/__init__.py": "X = 2\n"}, "pad_bytes": 3000000},
  {"name": "bulkiest", "version": "1.0",
   "files": {"bulkiest/__init__.py": "X = 3\n"}, "pad_bytes": 3000000}
])";

struct VenvWorld {
  TempDir tmp;
  std::string index = tmp / "index";
  std::string venvs = tmp / "venvs";
  std::string config = tmp / "plugin.yaml";
  std::string socket = tmp / "service.sock";
  int projects = 0;
  // More keys of the service: section, e.g. "max_parallel_builds: 2".
  std::vector<std::string> service_lines;
  // The build service of this store, (re)started by configure().
  std::optional<ServiceProcess> service;

  explicit VenvWorld(const std::string& packages = kDefaultPackages) {
    make_index(index, packages);
  }

  [[nodiscard]] std::string file_index_url() const { return "file://" + index + "/simple/"; }

  // Writes plugin.yaml: enabled, this world's store, the given index, extras.
  // Writes plugin.yaml: enabled, this world's store and service socket, the
  // given index, extras; then restarts the build service on it, unless
  // `with_service` is false.
  void configure(const std::vector<std::string>& extra = {}, const std::string& index_url = "",
                 bool with_service = true) {
    std::vector<std::string> lines = {
        "venvs_dir: " + venvs, "index_url: " + (index_url.empty() ? file_index_url() : index_url)};
    bool has_service_section = false;
    bool has_enabled = false;
    for (const auto& l : extra) {
      has_service_section = has_service_section || l == "service:";
      has_enabled = has_enabled || l.rfind("enabled:", 0) == 0;
    }
    if (!has_enabled) lines.insert(lines.begin(), "enabled: true");
    if (!has_service_section) {
      lines.insert(lines.end(), {"service:", "  socket: " + socket});
      for (const auto& l : service_lines)
        lines.push_back("  " + l);
    }
    lines.insert(lines.end(), extra.begin(), extra.end());
    write_plugin_yaml(config, lines);
    service.reset();
    if (with_service) start_service();
  }

  void start_service(const std::map<std::string, std::string>& env = {}) {
    service.reset();
    service.emplace(config, socket, tmp / "service.log", env, service_prefix);
  }
  // How the service is started, e.g. SystemUser::as() to run it as that user.
  std::vector<std::string> service_prefix;

  // A new compile directory holding `file_name` with `requirements`.
  std::string project(const std::string& requirements,
                      const std::string& file_name = "requirements.txt") {
    std::string dir = tmp / ("project-" + std::to_string(++projects));
    ::mkdir(dir.c_str(), 0755);
    if (!file_name.empty()) write_file(dir + "/" + file_name, requirements);
    return dir;
  }

  [[nodiscard]] std::vector<std::string> runner_argv(
      const std::string& dir, bool allow, const std::string& code,
      const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> a = {CLSI_RUNNER_PATH,
                                  "--plugin",
                                  CLSI_PLUGIN_PATH,
                                  "--plugin-config",
                                  config,
                                  "--compile-dir",
                                  dir,
                                  "--project-id",
                                  dir,
                                  "--user-id",
                                  "u1"};
    if (allow) a.emplace_back("--allow-python-install");
    a.insert(a.end(), extra.begin(), extra.end());
    // The "render": run python code with $QUARTO_PYTHON, as Quarto would.
    a.insert(a.end(), {"--", "sh", "-c",
                       "echo \"render python: ${QUARTO_PYTHON:-base}\"; "
                       "\"${QUARTO_PYTHON:-/usr/bin/python3}\" -c \"$0\"",
                       code});
    return a;
  }

  // Runs one compile through clsi-runner; returns what it added to output.log.
  std::string compile(const std::string& dir, bool allow = true,
                      const std::string& code = "import alpha; print('RENDER', alpha.MESSAGE)",
                      const std::map<std::string, std::string>& env = {},
                      const std::vector<std::string>& extra = {}, int* status = nullptr) const {
    const std::size_t before = file_size(dir + "/output.log");  // the runner appends
    auto r = run(runner_argv(dir, allow, code, extra), env);
    if (status) *status = r.status;
    return read_file_from(dir + "/output.log", before) + r.output;
  }

  // Nothing was built or asked for: the service laid out the store, and no
  // venv, key, lock or failure is in it.
  [[nodiscard]] bool untouched() const {
    for (const char* d : {"/envs", "/keys", "/locks", "/failures"}) {
      if (!list_dir(venvs + d).empty()) return false;
    }
    return true;
  }

  // venv directories (keys) present in the store.
  [[nodiscard]] std::vector<std::string> env_dirs() const {
    std::vector<std::string> out;
    for (const auto& e : list_dir(venvs + "/envs")) {
      if (e.find('.') == std::string::npos) out.push_back(e);
    }
    return out;
  }
};

// Processes whose command line mentions `needle` (excluding zombies), and,
// with `unless`, not that (one read of each command line decides both).
inline std::vector<int> processes_mentioning(const std::string& needle,
                                             const std::string& unless = {}) {
  std::vector<int> out;
  for (const auto& e : list_dir("/proc")) {
    if (e.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = read_file("/proc/" + e + "/cmdline");
    for (auto& c : cmd)
      c = c == '\0' ? ' ' : c;
    std::string stat = read_file("/proc/" + e + "/stat");
    auto close = stat.rfind(')');
    bool zombie = close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
    if (!zombie && cmd.find(needle) != std::string::npos &&
        (unless.empty() || cmd.find(unless) == std::string::npos))
      out.push_back(std::stoi(e));
  }
  return out;
}

// The completion record of `key` in the store `venvs` (envs/<key>.complete),
// read as the plugin reads it; an empty Record when there is none.
inline clsi::venv::Record record_of(const std::string& venvs, const std::string& key) {
  auto r = clsi::venv::parse_record(read_file(venvs + "/envs/" + key + ".complete"));
  return r ? *r : clsi::venv::Record{};
}

// The command lines of `pids`, one per line, for a failure's message.
inline std::string command_lines(const std::vector<int>& pids) {
  std::string out;
  for (int pid : pids) {
    std::string cmd = read_file("/proc/" + std::to_string(pid) + "/cmdline");
    for (auto& c : cmd)
      c = c == '\0' ? ' ' : c;
    out += std::to_string(pid) + ": " + cmd.substr(0, 300) + "\n";
  }
  return out;
}

// processes_mentioning(), less the pip the service keeps waiting for the
// next build (plugin/src/pip_spare.hpp, in tmp/pip-spare-*): what a build
// left running.
inline std::vector<int> leftovers_mentioning(const std::string& needle) {
  return processes_mentioning(needle, "/pip-spare-");
}

// Polls `done` until it holds or `within` has passed; whether it held. For
// what the service does once it has answered (its eviction after a build).
template <class Done>
bool eventually(Done done, std::chrono::milliseconds within = std::chrono::seconds(30)) {
  const auto until = std::chrono::steady_clock::now() + within;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Whether process `pid` is pip: `python -m pip ...`, or pip started through
// the service's shim (plugin/src/pip_resolve_shim.hpp); not `python -m venv`.
inline bool is_pip(int pid) {
  const std::string cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  return cmdline.find(std::string("-m\0pip\0", 7)) != std::string::npos ||
         cmdline.find("from pip._internal.cli.main import main") != std::string::npos;
}

}  // namespace testenv
