#include "test_env.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;
namespace fs = std::filesystem;

namespace testenv {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/clsi-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (std::getenv("CLSI_KEEP_TEST_DIRS")) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

static std::string which(const std::string& cmd) {
  if (cmd.find('/') != std::string::npos) return cmd;
  const char* p = std::getenv("PATH");
  std::stringstream ss(p ? p : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string c = dir + "/" + cmd;
    if (::access(c.c_str(), X_OK) == 0) return c;
  }
  return cmd;
}

CommandResult run(const std::vector<std::string>& argv,
                  const std::map<std::string, std::string>& extra_env, const std::string& cwd,
                  int timeout_s) {
  clsi::SpawnOptions o;
  o.executable = which(argv.at(0));
  o.args.assign(argv.begin() + 1, argv.end());
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    if (!extra_env.count(kv.substr(0, kv.find('=')))) o.env.push_back(kv);
  }
  for (const auto& [k, v] : extra_env)
    o.env.push_back(k + "=" + v);
  o.cwd = cwd;
  CommandResult r;
  auto out =
      clsi::run_streaming(o, std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s),
                          [&](std::string_view line) { r.output.append(line).append("\n"); });
  if (out.spawn_failed) throw std::runtime_error(out.spawn_error);
  r.status = out.timed_out ? 124 : clsi::Child::shell_status(out.wait_status);
  return r;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::size_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::size_t>(st.st_size) : 0;
}

std::string read_file_from(const std::string& path, std::size_t offset) {
  std::string all = read_file(path);
  return offset <= all.size() ? all.substr(offset) : all;  // shorter: a new file
}

void write_file(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

std::vector<std::string> list_tree(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    out.push_back(fs::relative(it->path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::int64_t du_bytes(const std::string& path) {
  CommandResult r;
  for (int attempt = 0; attempt < 20; ++attempt) {
    r = run({"du", "-sB1", path});
    if (r.status == 0) return std::stoll(r.output);
    if (r.output.find("No such file or directory") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("du -sB1 " + path + " failed (" + std::to_string(r.status) +
                           "): " + r.output);
}

int count_occurrences(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

std::string helper_python() {
  return "/usr/bin/python3";
}
std::string base_python() {
  return "/usr/bin/python3";
}

void make_index(const std::string& dir, const std::string& json_spec) {
  std::string spec = dir + ".spec.json";
  write_file(spec, json_spec);
  auto r = run({helper_python(), std::string(CLSI_SOURCE_DIR) + "/examples/tools/mkindex.py", dir,
                "--spec", spec});
  if (r.status != 0) throw std::runtime_error("mkindex failed: " + r.output);
}

IndexServer::IndexServer(const std::string& dir, int delay_ms) {
  log_ = dir + ".requests.log";
  agents_ = dir + ".agents.log";
  std::string port_file = dir + ".port";
  ::unlink(port_file.c_str());
  clsi::SpawnOptions o;
  o.executable = helper_python();
  o.args = {std::string(CLSI_SOURCE_DIR) + "/examples/tools/serve_index.py",
            dir,
            "--port-file",
            port_file,
            "--log",
            log_,
            "--agents",
            agents_,
            "--delay-ms",
            std::to_string(delay_ms)};
  for (char** e = environ; *e; ++e)
    o.env.emplace_back(*e);
  o.output_fd = 2;
  std::error_code ec;
  child_ = clsi::Child::spawn(o, ec);
  if (!child_) throw std::runtime_error("cannot start the index server: " + ec.message());
  for (int i = 0; i < 200 && !exists(port_file); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  port_ = std::atoi(read_file(port_file).c_str());
  if (port_ <= 0) throw std::runtime_error("the index server did not start");
}

IndexServer::~IndexServer() {
  if (child_) child_->terminate(std::chrono::milliseconds(1000));
}

std::string IndexServer::url() const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/simple/";
}

std::vector<std::string> IndexServer::requests() const {
  return lines_of(log_);
}

std::vector<std::string> IndexServer::agents() const {
  return lines_of(agents_);
}

std::vector<std::string> IndexServer::lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::stringstream ss(read_file(path));
  std::string line;
  while (std::getline(ss, line))
    out.push_back(line);
  return out;
}

std::string write_plugin_yaml(const std::string& path, const std::vector<std::string>& lines) {
  std::string y = "python_venv:\n";
  for (const auto& l : lines)
    y += "  " + l + "\n";
  write_file(path, y);
  return path;
}

static bool can_connect(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return false;
  std::copy(path.begin(), path.end(), addr.sun_path);
  clsi::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  return fd && ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

ServiceProcess::ServiceProcess(const std::string& config, const std::string& socket,
                               const std::string& log_path,
                               const std::map<std::string, std::string>& env,
                               const std::vector<std::string>& prefix)
    : log_path_(log_path) {
  std::vector<std::string> argv = prefix;
  argv.insert(argv.end(),
              {std::string(CLSI_BUILD_DIR) + "/bin/clsi-venvs", "serve", "--config", config});
  clsi::SpawnOptions o;
  o.executable = which(argv.at(0));
  o.args.assign(argv.begin() + 1, argv.end());
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    if (!env.count(kv.substr(0, kv.find('=')))) o.env.push_back(kv);
  }
  for (const auto& [k, v] : env)
    o.env.push_back(k + "=" + v);
  clsi::UniqueFd out(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  o.output_fd = out.get();
  std::error_code ec;
  child_ = clsi::Child::spawn(o, ec);
  if (!child_) throw std::runtime_error("cannot start clsi-venvs serve: " + ec.message());
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (!can_connect(socket)) {
    if (child_->try_wait() || std::chrono::steady_clock::now() > until) {
      std::string why = read_file(log_path);
      child_.reset();
      throw std::runtime_error("clsi-venvs serve did not start: " + why);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

ServiceProcess::~ServiceProcess() {
  if (child_) stop();
}

std::string ServiceProcess::log() const {
  return read_file(log_path_);
}

int ServiceProcess::stop(int timeout_s) {
  if (!child_) return -1;
  child_->signal_group(SIGTERM);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  std::optional<int> status;
  while (!(status = child_->try_wait()) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  int ws = status ? *status : child_->terminate(std::chrono::milliseconds(100));
  child_.reset();
  return status ? clsi::Child::shell_status(ws) : 124;
}

void ServiceProcess::kill_now() {
  if (!child_) return;
  child_->signal_group(SIGKILL);
  child_->wait();
  child_.reset();
}

}  // namespace testenv
