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
#include "clsi/plugin_loader.hpp"
#include "clsi/unique_fd.hpp"

extern char** environ;

namespace {

constexpr int kStatusRunnerError = 125;  // like env(1)/timeout(1): the runner itself failed
constexpr int kStatusTimedOut = 124;
constexpr auto kKillGrace = std::chrono::milliseconds(2000);

const char* const kUsage =
    "usage: clsi-runner --plugin SO [--plugin SO ...] --plugin-config YAML --compile-dir DIR\n"
    "                   [--project-id ID] [--user-id ID] [--allow-python-install]\n"
    "                   [--timeout SECONDS] [--run-as USER] [--no-network]\n"
    "                   -- COMMAND [ARG ...]\n"
    "\n"
    "  --run-as USER  run only COMMAND (not the plugins) as USER (a name or a numeric uid\n"
    "                 from passwd), with its groups and HOME, USER and LOGNAME set from\n"
    "                 passwd. Needs root. DIR must be writable by USER for the render's\n"
    "                 outputs; output.log is written through a descriptor the runner opens.\n"
    "  --no-network   run COMMAND in a new network namespace with only loopback up. Needs\n"
    "                 root (CAP_SYS_ADMIN, CAP_NET_ADMIN).\n";

struct Options {
  std::vector<std::string> plugins;
  std::string plugin_config;
  std::string compile_dir;
  std::string project_id;
  std::string user_id;
  bool allow_python_install = false;
  double timeout_s = -1;
  std::string run_as;  // empty: the runner's own user
  bool no_network = false;
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
    } else if (a == "--plugin") {
      if (!value(v)) return false;
      o.plugins.push_back(v);
    } else if (a == "--plugin-config") {
      if (!value(o.plugin_config)) return false;
    } else if (a == "--compile-dir") {
      if (!value(o.compile_dir)) return false;
    } else if (a == "--project-id") {
      if (!value(o.project_id)) return false;
    } else if (a == "--user-id") {
      if (!value(o.user_id)) return false;
    } else if (a == "--allow-python-install") {
      o.allow_python_install = true;
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
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      why = "unknown argument '" + a + "'";
      return false;
    }
  }
  if (o.compile_dir.empty())
    why = "--compile-dir is required";
  else if (o.command.empty())
    why = "no COMMAND after --";
  else if (!o.plugins.empty() && o.plugin_config.empty())
    why = "--plugin-config is required with --plugin";
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

struct PluginSlot;

struct Compile {
  OutputLog* log = nullptr;
  std::mutex env_mu;
  bool env_open = false;  // set_env is legal only during pre-compile
  std::map<std::string, std::pair<std::string, std::string>> env;  // name -> (value, plugin)
};

struct PluginSlot {
  std::string name;
  clsi_host_callbacks_v1 callbacks{};
  Compile* compile = nullptr;  // compile_host_ptr points at the slot
};

void host_log(void* host_ptr, clsi_log_level level, const char* message) {
  static const char* const kLevels[] = {"debug", "info", "warning", "error"};
  auto* slot = static_cast<PluginSlot*>(host_ptr);
  int l = (level >= CLSI_LOG_DEBUG && level <= CLSI_LOG_ERROR) ? level : CLSI_LOG_ERROR;
  std::fprintf(stderr, "clsi-runner: %s: %s: %s\n", slot->name.c_str(), kLevels[l],
               message ? message : "");
}

bool valid_env_name(const char* name) {
  if (!name || !*name || std::isdigit(static_cast<unsigned char>(*name))) return false;
  for (const char* p = name; *p; ++p) {
    if (!std::isalnum(static_cast<unsigned char>(*p)) && *p != '_') return false;
  }
  return true;
}

int host_set_env(void* compile_host_ptr, const char* name, const char* value) {
  auto* slot = static_cast<PluginSlot*>(compile_host_ptr);
  if (!slot || !slot->compile || !valid_env_name(name) || !value) return -1;
  std::lock_guard lock(slot->compile->env_mu);
  if (!slot->compile->env_open) return -1;
  slot->compile->env[name] = {value, slot->name};
  return 0;
}

void host_append_output(void* compile_host_ptr, const char* text, size_t len) {
  auto* slot = static_cast<PluginSlot*>(compile_host_ptr);
  if (slot && slot->compile && text) slot->compile->log->append(text, len);
}

// The runner's environment, then the plugins' variables, then `overrides`
// (the --run-as user's HOME, USER, LOGNAME), each replacing the one before.
std::vector<std::string> command_environment(const Compile& c,
                                             const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string_view::npos) {
      std::string name(kv.substr(0, eq));
      if (c.env.count(name) || overrides.count(name)) continue;
    }
    env.emplace_back(kv);
  }
  for (const auto& [name, value] : c.env) {
    if (!overrides.count(name)) env.push_back(name + "=" + value.first);
  }
  for (const auto& [name, value] : overrides)
    env.push_back(name + "=" + value);
  return env;
}

std::string resolve_command(const std::string& cmd) {
  if (cmd.find('/') != std::string::npos) return cmd;
  const char* path = std::getenv("PATH");
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
  if (!parse_args(argc, argv, opt, why)) {
    std::fprintf(stderr, "clsi-runner: %s\n%s", why.c_str(), kUsage);
    return kStatusRunnerError;
  }
  // An unknown user or a runner that cannot sandbox fails before anything runs.
  std::optional<CommandUser> command_user;
  if (!opt.run_as.empty()) {
    command_user = resolve_user(opt.run_as, why);
    if (!command_user) {
      std::fprintf(stderr, "clsi-runner: %s\n", why.c_str());
      return kStatusRunnerError;
    }
  }
  if (!can_isolate(opt, why)) {
    std::fprintf(stderr, "clsi-runner: %s\n", why.c_str());
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
  ::sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  clsi::UniqueFd sigfd(::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK));
  auto pending_signal = [&]() -> int {
    signalfd_siginfo si{};
    return ::read(sigfd.get(), &si, sizeof si) == sizeof si ? static_cast<int>(si.ssi_signo) : 0;
  };

  // Load and check every plugin before anything runs.
  std::vector<clsi::PluginLibrary> libraries;
  libraries.reserve(opt.plugins.size());
  for (const auto& path : opt.plugins) {
    auto lib = clsi::PluginLibrary::open(path, why);
    if (!lib) {
      std::fprintf(stderr, "clsi-runner: %s\n", why.c_str());
      return kStatusRunnerError;
    }
    libraries.push_back(std::move(*lib));
  }

  struct stat st {};
  if (::stat(opt.compile_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    std::fprintf(stderr, "clsi-runner: compile directory %s does not exist\n",
                 opt.compile_dir.c_str());
    return kStatusRunnerError;
  }
  char real[PATH_MAX];
  if (::realpath(opt.compile_dir.c_str(), real) == nullptr) {
    std::fprintf(stderr, "clsi-runner: %s: %s\n", opt.compile_dir.c_str(),
                 clsi::errno_text(errno).c_str());
    return kStatusRunnerError;
  }
  std::string compile_dir = real;
  std::string log_path = compile_dir + "/output.log";
  clsi::UniqueFd log_fd(::open(
      log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!log_fd) {
    std::fprintf(stderr, "clsi-runner: cannot write %s: %s\n", log_path.c_str(),
                 clsi::errno_text(errno).c_str());
    return kStatusRunnerError;
  }
  OutputLog log(std::move(log_fd));
  Compile compile;
  compile.log = &log;

  std::vector<std::unique_ptr<PluginSlot>> slots;
  std::vector<clsi::PluginInstance> instances;
  instances.reserve(libraries.size());
  for (auto& lib : libraries) {
    auto slot = std::make_unique<PluginSlot>();
    slot->name = lib.name();
    slot->compile = &compile;
    slot->callbacks = {sizeof(clsi_host_callbacks_v1), slot.get(), &host_log, &host_set_env,
                       &host_append_output};
    auto inst = clsi::PluginInstance::create(
        lib, &slot->callbacks, opt.plugin_config.empty() ? nullptr : opt.plugin_config.c_str(),
        why);
    if (!inst) {
      std::fprintf(stderr, "clsi-runner: %s\n", why.c_str());
      return kStatusRunnerError;
    }
    instances.push_back(std::move(*inst));
    slots.push_back(std::move(slot));
  }

  auto compile_facts = [&](size_t i) {
    auto now = std::chrono::steady_clock::now();
    long long left = -1;
    if (deadline != std::chrono::steady_clock::time_point::max()) {
      left = std::max<long long>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count());
    }
    return clsi_compile_v1{sizeof(clsi_compile_v1),
                           slots[i].get(),
                           opt.project_id.c_str(),
                           opt.user_id.c_str(),
                           compile_dir.c_str(),
                           opt.allow_python_install ? 1 : 0,
                           left};
  };

  // Pre-compile, in order. A hard error fails the compile before it runs.
  std::vector<void*> compile_ptrs(instances.size(), nullptr);
  std::vector<bool> pre_ran(instances.size(), false);
  bool failed = false;
  int stop_signal = 0;
  {
    std::lock_guard lock(compile.env_mu);
    compile.env_open = true;
  }
  // Each hook runs on a thread of its own while this one watches for a stop
  // signal and the deadline: ABI 1.0 cannot tell a hook that its compile was
  // cancelled, so a hook that waits (for a build, say) must not hold up a
  // SIGTERM or --timeout. When either comes first, the plugins that are done
  // get their post-compile hooks and the runner exits at once; the hook still
  // running is abandoned with the process (its locks die with it).
  auto abandon = [&](size_t running, int status, const std::string& why) {
    log.line(why + " while plugin " + slots[running]->name +
             " was preparing it; the command did not run");
    clsi_compile_result_v1 r{sizeof(clsi_compile_result_v1), status, status == kStatusTimedOut, 0};
    for (size_t j = running; j-- > 0;) {
      if (!pre_ran[j]) continue;
      auto facts = compile_facts(j);
      instances[j].post_compile(facts, compile_ptrs[j], r);
    }
    std::fflush(stderr);
    ::_exit(status);  // no destructors: the abandoned hook may still be running
  };
  for (size_t i = 0; i < instances.size() && !failed; ++i) {
    auto facts = compile_facts(i);
    clsi::UniqueFd hook_done(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    clsi_status s = CLSI_STATUS_ERROR;
    std::thread hook([&, i, facts, done = hook_done.get()]() mutable {
      s = instances[i].pre_compile(facts, &compile_ptrs[i]);
      std::uint64_t one = 1;
      (void)!::write(done, &one, sizeof one);
    });
    for (;;) {
      int wait_ms = 1000;
      if (deadline != std::chrono::steady_clock::time_point::max()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) {
          hook.detach();
          abandon(i, kStatusTimedOut,
                  "the compile timed out after " + std::to_string(opt.timeout_s) + " s");
        }
        wait_ms = static_cast<int>(std::min<long long>(left + 1, 1000));
      }
      pollfd fds[2] = {{hook_done.get(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
      ::poll(fds, 2, wait_ms);
      if (fds[0].revents & POLLIN) break;
      if (int sig = pending_signal(); sig != 0) {
        hook.detach();
        abandon(i, 128 + sig, std::string("the compile was stopped by ") + ::sigdescr_np(sig));
      }
    }
    hook.join();
    if (s == CLSI_STATUS_ERROR) {
      log.line("plugin " + slots[i]->name + " failed before the compile; the compile did not run");
      failed = true;
    } else {
      pre_ran[i] = true;
    }
    if ((stop_signal = pending_signal()) != 0) break;
  }
  {
    std::lock_guard lock(compile.env_mu);
    compile.env_open = false;
  }

  clsi_compile_result_v1 result{sizeof(clsi_compile_result_v1), kStatusRunnerError, 0, 0};
  auto cmd_start = std::chrono::steady_clock::now();
  if (!failed && stop_signal == 0) {
    for (const auto& [name, v] : compile.env) {
      log.line("environment: " + name + " set by " + v.second +
               (env_overrides.count(name) ? " (replaced for --run-as)" : ""));
    }
    clsi::SpawnOptions so;
    so.executable = resolve_command(opt.command[0]);
    so.args.assign(opt.command.begin() + 1, opt.command.end());
    so.env = command_environment(compile, env_overrides);
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
      std::fprintf(stderr, "clsi-runner: cannot start %s in its sandbox: %s\n",
                   opt.command[0].c_str(), ec.message().c_str());
      result.exit_status = kStatusRunnerError;
    } else if (!child) {
      log.line("cannot run " + opt.command[0] + ": " + ec.message());
      std::fprintf(stderr, "clsi-runner: cannot run %s: %s\n", opt.command[0].c_str(),
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
            result.timed_out = 1;
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
        log.line("the compile timed out after " + std::to_string(opt.timeout_s) +
                 " s; its processes were stopped");
        result.exit_status = kStatusTimedOut;
      } else if (stop_signal) {
        log.line(std::string("the compile was stopped by ") + ::sigdescr_np(stop_signal));
        result.exit_status = 128 + stop_signal;
      }
    }
  } else if (stop_signal) {
    result.exit_status = 128 + stop_signal;
  }
  result.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - cmd_start)
                           .count();

  // Post-compile, in reverse order; never changes the result.
  for (size_t i = instances.size(); i-- > 0;) {
    if (!pre_ran[i]) continue;
    auto facts = compile_facts(i);
    clsi_status s = instances[i].post_compile(facts, compile_ptrs[i], result);
    if (s == CLSI_STATUS_ERROR) {
      std::fprintf(stderr, "clsi-runner: plugin %s: post-compile hook failed (ignored)\n",
                   slots[i]->name.c_str());
    }
  }
  return result.exit_status;
}
