// Helpers shared by the tests: temporary directories, running commands,
// building package indexes and serving them on loopback.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "clsi/child_process.hpp"

namespace testenv {

// A fresh directory under $TMPDIR (or /tmp), removed on destruction unless
// CLSI_KEEP_TEST_DIRS is set.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

struct CommandResult {
  int status = -1;     // shell-style: exit code or 128+signal
  std::string output;  // stdout and stderr, merged
};

// Runs argv[0] (absolute or found on PATH) with the current environment plus
// `extra_env`, in `cwd`, bounded by `timeout_s`.
CommandResult run(const std::vector<std::string>& argv,
                  const std::map<std::string, std::string>& extra_env = {},
                  const std::string& cwd = "", int timeout_s = 300);

std::string read_file(const std::string& path);
// clsi-runner appends to output.log: a compile's own lines are what follows
// the size the file had before it (file_size: 0 when there is no file).
std::size_t file_size(const std::string& path);
std::string read_file_from(const std::string& path, std::size_t offset);
void write_file(const std::string& path, const std::string& content);
bool exists(const std::string& path);
// Files and directories under `dir`, relative, sorted.
std::vector<std::string> list_tree(const std::string& dir);
// Names of the entries directly in `dir`, sorted.
std::vector<std::string> list_dir(const std::string& dir);
int count_occurrences(const std::string& haystack, const std::string& needle);
// Bytes `path` takes on disk as `du -sB1` counts them (each hard-linked file
// once). A store the service is evicting from changes under du, which then
// exits 1 naming an entry that vanished mid-walk: that is retried (a few
// times), any other failure throws with du's output.
std::int64_t du_bytes(const std::string& path);

// Python used for the helper scripts (not the interpreter under test).
std::string helper_python();
// The interpreter the plugin uses as base (Debian's /usr/bin/python3).
std::string base_python();

// Builds a PEP 503 index in `dir` from a JSON spec (see examples/tools/mkindex.py).
void make_index(const std::string& dir, const std::string& json_spec);

// A loopback HTTP server for an index directory that logs every request.
class IndexServer {
 public:
  // delay_ms: every response is delayed (a slow mirror).
  explicit IndexServer(const std::string& dir, int delay_ms = 0);
  ~IndexServer();
  IndexServer(const IndexServer&) = delete;
  IndexServer& operator=(const IndexServer&) = delete;
  [[nodiscard]] std::string url() const;                    // http://127.0.0.1:PORT/simple/
  [[nodiscard]] std::vector<std::string> requests() const;  // "GET /simple/alpha/"
  [[nodiscard]] std::vector<std::string> agents() const;    // each request's User-Agent

 private:
  static std::vector<std::string> lines_of(const std::string& path);
  std::optional<clsi::Child> child_;
  std::string log_;
  std::string agents_;
  int port_ = 0;
};

// `clsi-venvs serve --config CONFIG`, running until destroyed (SIGTERM, then
// SIGKILL), its stderr kept in `log_path`. `prefix` runs it through another
// program first (e.g. setpriv to run it as a test user).
class ServiceProcess {
 public:
  ServiceProcess(const std::string& config, const std::string& socket, const std::string& log_path,
                 const std::map<std::string, std::string>& env = {},
                 const std::vector<std::string>& prefix = {});
  ~ServiceProcess();
  ServiceProcess(const ServiceProcess&) = delete;
  ServiceProcess& operator=(const ServiceProcess&) = delete;
  [[nodiscard]] int pid() const { return child_ ? child_->pid() : -1; }
  [[nodiscard]] std::string log() const;
  // SIGTERM; the service's exit status (shell style).
  int stop(int timeout_s = 10);
  // SIGKILL to the whole group, as the OOM killer or a node crash would.
  void kill_now();

 private:
  std::optional<clsi::Child> child_;
  std::string log_path_;
};

// Writes a plugin.yaml with the given python_venv body lines (indented for you).
std::string write_plugin_yaml(const std::string& path, const std::vector<std::string>& lines);

}  // namespace testenv
