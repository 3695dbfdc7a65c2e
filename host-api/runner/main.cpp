// clsi-runner: the reference host. Loads plugins, runs their pre-compile
// hooks, runs COMMAND in the compile directory with the environment they
// injected, logs everything to DIR/output.log (appended to, never
// truncated), runs the post-compile hooks and exits with the command's
// status (124 on timeout). --run-as and
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

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "clsi/child_process.hpp"
#include "clsi/cli_text.hpp"
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
  std::vector<std::string> command;
};

// "Usage: clsi-runner ... -- COMMAND [ARG ...]": COMMAND is not a CLI11
// positional (see parse_command_line), so the usage line is written here.
class RunnerFormatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App* /*app*/, std::string name) const override {
    return "Usage: " + name +
           " --compile-dir DIR [--plugin SO [--plugin-config YAML] ...] [OPTIONS]\n"
           "       " +
           std::string(name.size(), ' ') + " -- COMMAND [ARG ...]\n";
  }
};

const char* const kFooter =
    "Exit status: the command's own (128+N when a signal N killed it); 124 when --timeout\n"
    "expired; 128+N when the runner got SIGINT, SIGTERM or SIGHUP (N); 125 when the runner\n"
    "itself failed: a bad command line (an unknown option, a missing or invalid value, no\n"
    "COMMAND), a plugin that could not be loaded or refused to start, a pre-compile hook that\n"
    "returned ERROR, an unknown --run-as user, a command that could not be sandboxed;\n"
    "126 or 127 when COMMAND could not be executed or was not found. --help and --version\n"
    "exit 0. docs/host-api.md has the details.";

std::string positive_seconds(std::string& value) {
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || !(v > 0) || !std::isfinite(v))
    return "takes a positive number of seconds, not '" + value + "'";
  return {};
}

std::string not_empty(std::string& value) {
  return value.empty() ? "needs a user name or uid" : std::string();
}

// Parses the command line into `o`. False when main() should exit with
// `status` now: after --help or --version (0), or a usage error (125, with
// the message on stderr). Throws what CLI11 throws while it is set up.
bool parse_command_line_or_throw(int argc, char** argv, Options& o, int& status) {
  // Everything after the first "--" is COMMAND, as given: CLI11 would let a
  // repeatable option's values run on past "--", and would take a word
  // before it as COMMAND.
  int split = 1;
  while (split < argc && std::string_view(argv[split]) != "--")
    ++split;
  const bool has_command = split < argc;
  for (int i = split + 1; i < argc; ++i)
    o.command.emplace_back(argv[i]);

  using clsi::wrap_text;
  CLI::App app(wrap_text("The reference host of the CLSI runner-plugin ABI: loads the plugins, "
                         "runs their pre-compile hooks, runs COMMAND in DIR with the environment "
                         "they injected, writes their lines and COMMAND's output to "
                         "DIR/output.log (appending to it), runs the post-compile hooks and "
                         "exits with COMMAND's status.",
                         96),
               "clsi-runner");
  app.formatter(std::make_shared<RunnerFormatter>());
  app.get_formatter()->column_width(30);
  app.set_version_flag("--version",
                       "clsi-runner " CLSI_VERSION " (plugin ABI " +
                           std::to_string(CLSI_PLUGIN_ABI_MAJOR) + "." +
                           std::to_string(CLSI_PLUGIN_ABI_MINOR) + ")",
                       "print the version and exit");
  app.set_help_flag("-h,--help", "print this help and exit");
  app.footer(kFooter);
  std::vector<std::string> plugins;
  std::vector<std::string> optional_plugins;
  std::vector<std::string> configs;
  bool allow_python_install = false;
  // allow_extra_args(false): one value per occurrence, so the order of the
  // occurrences (parse_order) pairs each plugin with its --plugin-config.
  auto* plugin =
      app.add_option("--plugin", plugins,
                     wrap_text("load the plugin SO (repeatable; in order). A --plugin-config "
                               "right after it is that plugin's own configuration; given once, "
                               "--plugin-config serves every plugin."))
          ->type_name("SO")
          ->allow_extra_args(false);
  auto* optional =
      app.add_option("--optional-plugin", optional_plugins,
                     wrap_text("like --plugin, but a plugin that fails to load or start is "
                               "skipped with a warning instead of refusing the compile"))
          ->type_name("SO")
          ->allow_extra_args(false);
  auto* config = app.add_option("--plugin-config", configs,
                                wrap_text("the configuration file of the plugin before it "
                                          "(required with --plugin)"))
                     ->type_name("YAML")
                     ->allow_extra_args(false);
  app.add_option("--compile-dir", o.compile_dir,
                 wrap_text("the compile directory: COMMAND runs there, output.log is written "
                           "there"))
      ->type_name("DIR")
      ->required();
  app.add_option("--project-id", o.project_id, "the project's id, passed to the plugins")
      ->type_name("ID");
  app.add_option("--user-id", o.user_id, "the compiling user's id, passed to the plugins")
      ->type_name("ID");
  app.add_flag("--allow-python-install", allow_python_install,
               wrap_text("this user may install Python packages (the web tier's decision: the "
                         "owner and invited collaborators yes, anonymous and link-sharing users "
                         "no; default deny); the same as --permission python.install"));
  app.add_option("--permission", o.permissions,
                 wrap_text("a permission the web tier granted this user (repeatable)"))
      ->type_name("NAME")
      ->allow_extra_args(false);
  app.add_option("--timeout", o.timeout_s,
                 wrap_text("the compile's deadline: when it passes, the command's whole process "
                           "tree is killed and the runner exits 124"))
      ->type_name("SECONDS")
      ->check(CLI::Validator(positive_seconds, ""));
  app.add_option("--run-as", o.run_as,
                 wrap_text("run only COMMAND (never the plugins) as USER, a name or a numeric uid "
                           "from passwd, with its groups and HOME, USER and LOGNAME. Needs root. "
                           "DIR must be writable by USER for the render's outputs; output.log is "
                           "written through a descriptor the runner opens."))
      ->type_name("USER")
      ->check(CLI::Validator(not_empty, ""));
  app.add_flag("--no-network", o.no_network,
               wrap_text("run COMMAND in a new network namespace with only loopback up. Needs "
                         "root (CAP_SYS_ADMIN, CAP_NET_ADMIN)."));

  auto usage_error = [&](const std::string& why) {
    (void)std::fprintf(stderr, "clsi-runner: %s\nRun 'clsi-runner --help' for usage.\n",
                       why.c_str());
    status = kStatusRunnerError;
    return false;
  };
  try {
    app.parse(split, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --version: printed on stdout
      status = app.exit(e);
      return false;
    }
    // An unknown option or a stray word is named first: CLI11 would report
    // a missing --compile-dir before it.
    std::string why;
    bool stray = false;
    for (const auto& arg : app.remaining()) {
      why += why.empty() ? "" : "; ";
      if (arg.size() > 1 && arg[0] == '-') {
        why += "unknown option " + arg.substr(0, arg.find('='));
      } else {
        why += "unexpected argument '" + arg + "'";
        stray = true;
      }
    }
    if (stray) why += " (COMMAND and its arguments go after --)";
    return usage_error(why.empty() ? e.what() : why);
  }
  if (!has_command || o.command.empty()) return usage_error("no COMMAND after --");
  if (allow_python_install) o.permissions.emplace_back(CLSI_PERMISSION_PYTHON_INSTALL);
  std::size_t next_plugin = 0;
  std::size_t next_optional = 0;
  std::size_t next_config = 0;
  for (const CLI::Option* opt : app.parse_order()) {
    if (opt == plugin && next_plugin < plugins.size()) {
      o.plugins.push_back({plugins[next_plugin++], "", false});
    } else if (opt == optional && next_optional < optional_plugins.size()) {
      o.plugins.push_back({optional_plugins[next_optional++], "", true});
    } else if (opt == config && next_config < configs.size()) {
      const std::string& v = configs[next_config++];
      if (o.plugins.empty() || !o.plugins.back().config.empty())
        return usage_error("--plugin-config " + v + " follows no --plugin of its own");
      o.plugins.back().config = v;
      o.configs.push_back(v);
    }
  }
  if (!o.plugins.empty() && o.configs.empty())
    return usage_error("--plugin-config is required with --plugin");
  // One --plugin-config serves every plugin (as before ABI 1.1); with
  // several, each plugin has the one that follows it.
  if (o.configs.size() == 1) {
    for (auto& p : o.plugins)
      p.config = o.configs[0];
  } else {
    for (const auto& p : o.plugins) {
      if (p.config.empty())
        return usage_error("plugin " + p.path + " has no --plugin-config of its own");
    }
  }
  return true;
}

bool parse_command_line(int argc, char** argv, Options& o, int& status) {
  try {
    return parse_command_line_or_throw(argc, argv, o, status);
  } catch (const std::exception& e) {
    (void)std::fprintf(stderr, "clsi-runner: %s\n", e.what());
    status = kStatusRunnerError;
    return false;
  }
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
  if (int status = 0; !parse_command_line(argc, argv, opt, status)) return status;
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
  // Appended to, never truncated: what is there (the lines of an earlier
  // step, or a render that writes output.log itself) stays, and everyone's
  // writes land at the end, whoever opened the file.
  clsi::UniqueFd log_fd(
      ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644));
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
