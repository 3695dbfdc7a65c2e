// clsi-runner: the reference host. Loads plugins, runs their pre-compile
// hooks, runs COMMAND in the compile directory with the environment they
// injected, logs everything to DIR/output.log, runs the post-compile hooks
// and exits with the command's status (124 on timeout). --run-as and
// --no-network sandbox the command only; plugins always run in this process.
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "clsi/child_process.hpp"
#include "clsi/errno_text.hpp"
#include "clsi/plugin_host.hpp"
#include "clsi/unique_fd.hpp"

extern char** environ;

namespace {

constexpr int kStatusRunnerError = 125;  // like env(1)/timeout(1): the runner itself failed
constexpr int kStatusTimedOut = 124;
constexpr auto kKillGrace = std::chrono::milliseconds(2000);
// How long a pre-compile hook has to return once its compile is cancelled.
constexpr auto kCancelGrace = std::chrono::milliseconds(800);

// 2 -> "2", 0.5 -> "0.5".
std::string format_seconds(double s) {
  char buf[32];
  (void)std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

const char* const kUsage =
    "usage: clsi-runner --plugin SO [--plugin SO ...] --plugin-config YAML --compile-dir DIR\n"
    "                   [--project-id ID] [--user-id ID] [--allow-python-install]\n"
    "                   [--timeout SECONDS] [--run-as USER] [--no-network]\n"
    "                   -- COMMAND [ARG ...]\n"
    "\n"
    "  --plugin SO [--plugin-config YAML]\n"
    "                 load SO; a --plugin-config right after it is that plugin's own\n"
    "                 configuration. Given once, --plugin-config serves every plugin.\n"
    "  --optional-plugin SO\n"
    "                 like --plugin, but a plugin that fails to load or start is skipped\n"
    "                 with a warning instead of refusing the compile.\n"
    "  --permission NAME\n"
    "                 a permission the web tier granted this user (repeatable);\n"
    "                 --allow-python-install is --permission python.install.\n"
    "  --run-as USER  run only COMMAND (not the plugins) as USER (a name or a numeric uid\n"
    "                 from passwd), with its groups and HOME, USER and LOGNAME set from\n"
    "                 passwd. Needs root. DIR must be writable by USER for the render's\n"
    "                 outputs; output.log is written through a descriptor the runner opens.\n"
    "  --no-network   run COMMAND in a new network namespace with only loopback up. Needs\n"
    "                 root (CAP_SYS_ADMIN, CAP_NET_ADMIN).\n";

struct Options {
  std::vector<clsi::PluginSpec> plugins;  // in order; config per plugin
  std::vector<std::string> configs;       // every --plugin-config, in order
  std::vector<std::string> permissions;
  std::string compile_dir;
  std::string project_id;
  std::string user_id;
  double timeout_s = -1;
  std::string run_as;  // empty: the runner's own user
  bool no_network = false;
  bool help = false;
  std::vector<std::string> command;
};

bool parse_args(int argc, char** argv, Options& o, std::string& why) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) {
        why = a + " needs a value";
        return false;
      }
      out = argv[++i];
      return true;
    };
    std::string v;
    if (a == "--") {
      for (++i; i < argc; ++i)
        o.command.emplace_back(argv[i]);
      break;
    } else if (a == "--plugin" || a == "--optional-plugin") {
      if (!value(v)) return false;
      o.plugins.push_back({v, "", a == "--optional-plugin"});
    } else if (a == "--plugin-config") {
      if (!value(v)) return false;
      if (o.plugins.empty() || !o.plugins.back().config.empty()) {
        why = "--plugin-config " + v + " follows no --plugin of its own";
        return false;
      }
      o.plugins.back().config = v;
      o.configs.push_back(v);
    } else if (a == "--permission") {
      if (!value(v)) return false;
      o.permissions.push_back(v);
    } else if (a == "--compile-dir") {
      if (!value(o.compile_dir)) return false;
    } else if (a == "--project-id") {
      if (!value(o.project_id)) return false;
    } else if (a == "--user-id") {
      if (!value(o.user_id)) return false;
    } else if (a == "--allow-python-install") {
      o.permissions.emplace_back(CLSI_PERMISSION_PYTHON_INSTALL);
    } else if (a == "--run-as") {
      if (!value(o.run_as)) return false;
      if (o.run_as.empty()) {
        why = "--run-as needs a user name or uid";
        return false;
      }
    } else if (a == "--no-network") {
      o.no_network = true;
    } else if (a == "--timeout") {
      if (!value(v)) return false;
      char* end = nullptr;
      o.timeout_s = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(o.timeout_s > 0)) {
        why = "--timeout takes a positive number of seconds, not '" + v + "'";
        return false;
      }
    } else if (a == "-h" || a == "--help") {
      o.help = true;
      return true;
    } else {
      why = "unknown argument '" + a + "'";
      return false;
    }
  }
  if (o.compile_dir.empty())
    why = "--compile-dir is required";
  else if (o.command.empty())
    why = "no COMMAND after --";
  else if (!o.plugins.empty() && o.configs.empty())
    why = "--plugin-config is required with --plugin";
  // One --plugin-config serves every plugin (as before ABI 1.1); with
  // several, each plugin has the one that follows it.
  if (why.empty() && o.configs.size() == 1) {
    for (auto& p : o.plugins)
      p.config = o.configs[0];
  } else if (why.empty()) {
    for (const auto& p : o.plugins) {
      if (p.config.empty()) why = "plugin " + p.path + " has no --plugin-config of its own";
    }
  }
  return why.empty();
}

// The --run-as user, resolved before anything runs: the child cannot read
// passwd or the group database between fork and exec.
struct CommandUser {
  std::string name;
  std::string home;
  clsi::RunAs ids;
};

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// A name first, then a numeric uid, like chown(1). The uid must have a passwd
// entry: the command needs a HOME and a primary group.
std::optional<CommandUser> resolve_user(const std::string& who, std::string& why) {
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<size_t>(size) : 16384);
  passwd pw{};
  passwd* found = nullptr;
  int err;
  for (;;) {
    err = ::getpwnam_r(who.c_str(), &pw, buf.data(), buf.size(), &found);
    if (err == 0 && !found && all_digits(who)) {
      errno = 0;
      unsigned long long uid = std::strtoull(who.c_str(), nullptr, 10);
      if (errno == 0 && uid <= static_cast<uid_t>(-1) - 1)
        err = ::getpwuid_r(static_cast<uid_t>(uid), &pw, buf.data(), buf.size(), &found);
    }
    if (err != ERANGE) break;
    buf.resize(buf.size() * 2);
  }
  if (err != 0) {
    why = "--run-as " + who + ": cannot read the user database: " + clsi::errno_text(err);
    return std::nullopt;
  }
  if (!found) {
    why = "--run-as " + who + ": no such user (neither a user name nor a uid in passwd)";
    return std::nullopt;
  }
  CommandUser u;
  u.name = pw.pw_name;
  u.home = pw.pw_dir && *pw.pw_dir ? pw.pw_dir : "/";
  u.ids.uid = pw.pw_uid;
  u.ids.gid = pw.pw_gid;
  // The supplementary groups initgroups(3) would set; it cannot run in the child.
  int n = 32;
  for (;;) {
    u.ids.groups.resize(static_cast<size_t>(n));
    int want = n;
    if (::getgrouplist(u.name.c_str(), u.ids.gid, u.ids.groups.data(), &want) >= 0) {
      u.ids.groups.resize(static_cast<size_t>(want));
      break;
    }
    if (want <= n) {  // no progress: give up on the database, keep the primary group
      u.ids.groups.assign(1, u.ids.gid);
      break;
    }
    n = want;
  }
  return u;
}

bool has_capability(int cap) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

// The child repeats these checks for real; this refuses before any plugin runs.
bool can_isolate(const Options& o, std::string& why) {
  if (!o.run_as.empty() && !(has_capability(CAP_SETUID) && has_capability(CAP_SETGID))) {
    why = "--run-as needs clsi-runner to run as root (CAP_SETUID and CAP_SETGID); it runs as uid " +
          std::to_string(::geteuid()) + " without them";
    return false;
  }
  if (o.no_network && !(has_capability(CAP_SYS_ADMIN) && has_capability(CAP_NET_ADMIN))) {
    why =
        "--no-network needs clsi-runner to run as root (CAP_SYS_ADMIN to create a network "
        "namespace, CAP_NET_ADMIN to bring up its loopback); it runs as uid " +
        std::to_string(::geteuid()) + " without them";
    return false;
  }
  return true;
}

// output.log: appended by plugins (any thread) and written by the command.
class OutputLog {
 public:
  explicit OutputLog(clsi::UniqueFd fd) : fd_(std::move(fd)) {}
  void append(const char* text, size_t len) {
    std::lock_guard lock(mu_);
    while (len > 0) {
      ssize_t n = ::write(fd_.get(), text, len);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      text += n;
      len -= static_cast<size_t>(n);
    }
  }
  void line(const std::string& s) {
    std::string l = "[clsi-runner] " + s + "\n";
    append(l.data(), l.size());
  }
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  std::mutex mu_;
  clsi::UniqueFd fd_;
};

const char* level_name(clsi_log_level level) {
  static const char* const kLevels[] = {"debug", "info", "warning", "error"};
  return (level >= CLSI_LOG_DEBUG && level <= CLSI_LOG_ERROR) ? kLevels[level] : "error";
}

// The operator's log is stderr; a line names the plugin and, within a
// compile, the compile's id.
void operator_log(std::string_view plugin, clsi_log_level level, std::string_view compile_id,
                  std::string_view message) {
  std::string line = "clsi-runner: " + std::string(plugin) + ": " + level_name(level) + ": ";
  if (!compile_id.empty()) line += "[compile " + std::string(compile_id) + "] ";
  line += message;
  line += '\n';
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

std::vector<std::string> runner_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    env.emplace_back(*e);
  return env;
}

// The plugins' environment with `overrides` (the --run-as user's HOME, USER,
// LOGNAME) replacing whatever it had.
std::vector<std::string> command_environment(std::vector<std::string> env,
                                             const std::map<std::string, std::string>& overrides) {
  std::erase_if(
      env, [&](const std::string& kv) { return overrides.count(kv.substr(0, kv.find('='))) != 0; });
  for (const auto& [name, value] : overrides) {
    std::string kv = name;
    kv += '=';
    kv += value;
    env.push_back(std::move(kv));
  }
  return env;
}

std::string describe(const clsi::EnvChange& c) {
  switch (c.op) {
    case CLSI_ENV_PREPEND:
      return c.name + " prepended to by " + c.plugin;
    case CLSI_ENV_UNSET:
      return c.name + " unset by " + c.plugin;
    default:
      return c.name + " set by " + c.plugin;
  }
}

// `path`: the runner's PATH, read before any thread started.
std::string resolve_command(const std::string& cmd, const char* path) {
  if (cmd.find('/') != std::string::npos) return cmd;
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string dir = p.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + cmd;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return cmd;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  std::string why;
  // NOLINTNEXTLINE(concurrency-mt-unsafe): no thread has started yet
  const char* runner_path = std::getenv("PATH");
  if (!parse_args(argc, argv, opt, why)) {
    (void)std::fprintf(stderr, "clsi-runner: %s\n%s", why.c_str(), kUsage);
    return kStatusRunnerError;
  }
  if (opt.help) {
    (void)std::fputs(kUsage, stdout);
    return 0;
  }
  // An unknown user or a runner that cannot sandbox fails before anything runs.
  std::optional<CommandUser> command_user;
  if (!opt.run_as.empty()) {
    command_user = resolve_user(opt.run_as, why);
    if (!command_user) {
      (void)std::fprintf(stderr, "clsi-runner: %s\n", why.c_str());
      return kStatusRunnerError;
    }
  }
  if (!can_isolate(opt, why)) {
    (void)std::fprintf(stderr, "clsi-runner: %s\n", why.c_str());
    return kStatusRunnerError;
  }
  std::map<std::string, std::string> env_overrides;
  if (command_user) {
    env_overrides = {{"HOME", command_user->home},
                     {"USER", command_user->name},
                     {"LOGNAME", command_user->name}};
  }
  auto start = std::chrono::steady_clock::now();
  auto deadline = opt.timeout_s > 0
                      ? start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                    std::chrono::duration<double>(opt.timeout_s))
                      : std::chrono::steady_clock::time_point::max();

  // SIGINT/SIGTERM/SIGHUP end the compile like a timeout does; handled
  // synchronously through a signalfd. Children get them unblocked.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  for (int s : {SIGINT, SIGTERM, SIGHUP})
    sigaddset(&stop_signals, s);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  clsi::UniqueFd sigfd(::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK));
  auto pending_signal = [&]() -> int {
    signalfd_siginfo si{};
    return ::read(sigfd.get(), &si, sizeof si) == sizeof si ? static_cast<int>(si.ssi_signo) : 0;
  };

  // Load, check and create every plugin before anything runs.
  auto host = clsi::PluginHost::load(opt.plugins, &operator_log, why);
  if (!host) {
    (void)std::fprintf(stderr, "clsi-runner: %s\n", why.c_str());
    return kStatusRunnerError;
  }

  struct stat st {};
  if (::stat(opt.compile_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    (void)std::fprintf(stderr, "clsi-runner: compile directory %s does not exist\n",
                       opt.compile_dir.c_str());
    return kStatusRunnerError;
  }
  char real[PATH_MAX];
  if (::realpath(opt.compile_dir.c_str(), real) == nullptr) {
    (void)std::fprintf(stderr, "clsi-runner: %s: %s\n", opt.compile_dir.c_str(),
                       clsi::errno_text(errno).c_str());
    return kStatusRunnerError;
  }
  std::string compile_dir = real;
  std::string log_path = compile_dir + "/output.log";
  clsi::UniqueFd log_fd(::open(
      log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!log_fd) {
    (void)std::fprintf(stderr, "clsi-runner: cannot write %s: %s\n", log_path.c_str(),
                       clsi::errno_text(errno).c_str());
    return kStatusRunnerError;
  }
  OutputLog log(std::move(log_fd));
  clsi::CompileRequest request;
  request.project_id = opt.project_id;
  request.user_id = opt.user_id;
  request.compile_dir = compile_dir;
  request.permissions = opt.permissions;
  if (deadline != std::chrono::steady_clock::time_point::max()) request.deadline = deadline;
  request.base_env = runner_environment();
  clsi::HostCompile compile(*host, std::move(request),
                            [&log](std::string_view /*plugin*/, std::string_view line) {
                              std::string l(line);
                              l.push_back('\n');
                              log.append(l.data(), l.size());
                            });

  // The pre-compile hooks run on a thread of their own while this one
  // watches for a stop signal and the deadline. When either comes first the
  // compile is cancelled, which 1.1 plugins see and act on at once; a hook
  // that does not return within kCancelGrace (a 1.0 plugin cannot know) is
  // abandoned: the plugins that are done get their post-compile hooks and
  // the runner exits (the abandoned hook's locks die with the process).
  bool failed = false;
  int stop_signal = 0;
  bool timed_out_early = false;
  {
    clsi::UniqueFd hooks_done(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    clsi::HostCompile::PreResult pre;
    std::thread hooks([&, done = hooks_done.get()] {
      pre = compile.pre_compile();
      std::uint64_t one = 1;
      (void)!::write(done, &one, sizeof one);
    });
    auto wait_done = [&](int ms) {
      pollfd fds[2] = {{hooks_done.get(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
      ::poll(fds, 2, ms);
      return (fds[0].revents & POLLIN) != 0;
    };
    std::chrono::steady_clock::time_point give_up = std::chrono::steady_clock::time_point::max();
    std::string why_stopped;
    std::string running_at_cancel;
    for (;;) {
      int wait_ms = 1000;
      auto now = std::chrono::steady_clock::now();
      if (why_stopped.empty() && deadline != std::chrono::steady_clock::time_point::max()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
        if (left <= 0) {
          timed_out_early = true;
          why_stopped = "the compile timed out after " + format_seconds(opt.timeout_s) + " s";
        } else {
          wait_ms = static_cast<int>(std::min<long long>(left + 1, 1000));
        }
      }
      if (why_stopped.empty()) {
        if (int sig = pending_signal(); sig != 0) {
          stop_signal = sig;
          why_stopped = std::string("the compile was stopped by ") + ::sigdescr_np(sig);
        }
      }
      if (!why_stopped.empty() && give_up == std::chrono::steady_clock::time_point::max()) {
        running_at_cancel = compile.running_plugin();
        compile.cancel();
        give_up = now + kCancelGrace;
      }
      if (give_up != std::chrono::steady_clock::time_point::max()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(give_up - now).count();
        if (left <= 0) break;
        wait_ms = static_cast<int>(std::min<long long>(left, wait_ms));
      }
      if (wait_done(wait_ms)) break;
    }
    bool hooks_returned = wait_done(0);
    int status = timed_out_early ? kStatusTimedOut : 128 + stop_signal;
    std::string stopped_line =
        why_stopped + " while " +
        (running_at_cancel.empty() ? "the plugins were" : "plugin " + running_at_cancel + " was") +
        " preparing it; the command did not run";
    if (!why_stopped.empty() && !hooks_returned) {
      log.line(stopped_line + " (the plugin did not return; abandoned)");
      (void)compile.post_compile({status, timed_out_early, 0});
      (void)std::fflush(stderr);
      ::_exit(status);  // no destructors: the abandoned hook may still be running
    }
    hooks.join();
    if (!why_stopped.empty()) {
      log.line(stopped_line);
      (void)compile.post_compile({status, timed_out_early, 0});
      return status;
    }
    if (!pre.ok) {
      log.line("plugin " + pre.failed_plugin +
               " failed before the compile; the compile did not run");
      failed = true;
    }
  }

  clsi::CompileOutcome result{kStatusRunnerError, false, 0};
  auto cmd_start = std::chrono::steady_clock::now();
  if (!failed) {
    for (const auto& change : compile.env_changes()) {
      log.line("environment: " + describe(change) +
               (env_overrides.count(change.name) ? " (replaced for --run-as)" : ""));
    }
    clsi::SpawnOptions so;
    so.executable = resolve_command(opt.command[0], runner_path);
    so.args.assign(opt.command.begin() + 1, opt.command.end());
    so.env = command_environment(compile.environment(), env_overrides);
    so.cwd = compile_dir;
    so.output_fd = log.fd();  // opened here, so the user need not be able to write it
    // The whole tree of the command dies with this process, whatever kills
    // it, and the plugins' leases (shared locks) are held until it has.
    so.contain_tree = true;
    so.isolate_network = opt.no_network;
    if (command_user) {
      so.run_as = command_user->ids;
      log.line("running the command as " + command_user->name + " (uid " +
               std::to_string(command_user->ids.uid) + "), HOME=" + command_user->home);
    }
    if (opt.no_network) log.line("the command has no network access (loopback only)");
    std::error_code ec;
    auto child = clsi::Child::spawn(so, ec);
    if (!child && clsi::is_isolation_error(ec)) {
      log.line("cannot start the command in its sandbox: " + ec.message());
      (void)std::fprintf(stderr, "clsi-runner: cannot start %s in its sandbox: %s\n",
                         opt.command[0].c_str(), ec.message().c_str());
      result.exit_status = kStatusRunnerError;
    } else if (!child) {
      log.line("cannot run " + opt.command[0] + ": " + ec.message());
      (void)std::fprintf(stderr, "clsi-runner: cannot run %s: %s\n", opt.command[0].c_str(),
                         ec.message().c_str());
      result.exit_status = ec == std::errc::no_such_file_or_directory ? 127 : 126;
    } else {
      pollfd fds[2] = {{child->exit_fd(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
      while (!child->try_wait()) {
        int wait_ms = 1000;
        if (deadline != std::chrono::steady_clock::time_point::max()) {
          auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
          if (left <= 0) {
            result.timed_out = true;
            break;
          }
          wait_ms = static_cast<int>(std::min<long long>(left + 1, 1000));
        }
        ::poll(fds, 2, wait_ms);
        if ((stop_signal = pending_signal()) != 0) break;
      }
      int ws = child->terminate(kKillGrace);
      result.exit_status = clsi::Child::shell_status(ws);
      if (result.timed_out) {
        log.line("the compile timed out after " + format_seconds(opt.timeout_s) +
                 " s; its processes were stopped");
        result.exit_status = kStatusTimedOut;
      } else if (stop_signal) {
        log.line(std::string("the compile was stopped by ") + ::sigdescr_np(stop_signal));
        result.exit_status = 128 + stop_signal;
      }
    }
  }
  result.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - cmd_start)
                           .count();
  // Post-compile, in reverse order; never changes the result.
  (void)compile.post_compile(result);
  return result.exit_status;
}
