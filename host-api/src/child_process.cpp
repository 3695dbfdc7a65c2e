#include "clsi/child_process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/process/v2/posix/default_launcher.hpp>
#include <boost/process/v2/process.hpp>
#include <boost/process/v2/start_dir.hpp>
#include <boost/process/v2/stdio.hpp>
#include <cerrno>
#include <cstring>
#include <thread>
#include "clsi/errno_text.hpp"

namespace bp = boost::process::v2;

namespace clsi {
namespace {

// The isolation steps, in the order the child runs them.
enum class Step : int {
  kUnshareNet = 1,
  kLoopbackUp,
  kSetgroups,
  kSetgid,
  kSetuid,
  kVerify,
};

class IsolationCategory final : public std::error_category {
 public:
  explicit IsolationCategory(Step step) : step_(step) {}
  [[nodiscard]] const char* name() const noexcept override { return "clsi-isolation"; }
  [[nodiscard]] std::string message(int ev) const override {
    std::string cause = clsi::errno_text(ev);
    bool eperm = ev == EPERM;
    switch (step_) {
      case Step::kUnshareNet:
        return "cannot give the command its own network namespace (unshare(CLONE_NEWNET)): " +
               cause +
               (eperm ? "; this needs CAP_SYS_ADMIN: run clsi-runner as root (in a container, "
                        "one that may create namespaces)"
                      : "");
      case Step::kLoopbackUp:
        return "cannot bring up loopback in the command's network namespace (SIOCSIFFLAGS on "
               "lo): " +
               cause + (eperm ? "; this needs CAP_NET_ADMIN" : "");
      case Step::kSetgroups:
        return "cannot set the command's supplementary groups (setgroups): " + cause +
               (eperm ? "; --run-as needs clsi-runner to run as root (CAP_SETGID)" : "");
      case Step::kSetgid:
        return "cannot set the command's group (setgid): " + cause +
               (eperm ? "; --run-as needs clsi-runner to run as root (CAP_SETGID)" : "");
      case Step::kSetuid:
        return "cannot set the command's user (setuid): " + cause +
               (eperm ? "; --run-as needs clsi-runner to run as root (CAP_SETUID)" : "");
      case Step::kVerify:
        return "dropping privileges did not hold: after setuid the command's ids differ from "
               "the user's, or it could regain uid/gid 0";
    }
    return cause;
  }

 private:
  Step step_;
};

const std::error_category& isolation_category(Step step) {
  static const IsolationCategory kCategories[] = {
      IsolationCategory(Step::kUnshareNet), IsolationCategory(Step::kLoopbackUp),
      IsolationCategory(Step::kSetgroups),  IsolationCategory(Step::kSetgid),
      IsolationCategory(Step::kSetuid),     IsolationCategory(Step::kVerify),
  };
  return kCategories[static_cast<int>(step) - 1];
}

// What a child that failed an isolation step tells the parent. Boost's own
// error pipe carries only errno, which cannot say which step failed.
struct IsolationReport {
  int step;
  int err;
};

// Runs in the forked child, before exec: only async-signal-safe calls.
struct GroupLeaderInit {
  bool die_with_parent;
  bool detach;
  pid_t parent;
  const std::vector<int>* inherit;
  bool isolate_network;
  const RunAs* run_as;  // null: keep the caller's credentials
  int report_fd;        // write end for an IsolationReport, or -1

  bp::error_code on_setup(bp::posix::default_launcher& launcher, const bp::filesystem::path&,
                          const char* const*) const {
    for (int fd : *inherit)
      launcher.fd_whitelist.push_back(fd);
    return {};
  }

  bp::error_code on_exec_setup(bp::posix::default_launcher& /*launcher*/,
                               const bp::filesystem::path& /*exe*/,
                               const char* const* /*argv*/) const {
    if (detach) {
      if (::setsid() < 0) return {errno, bp::system_category()};
      pid_t pid = ::fork();
      if (pid < 0) return {errno, bp::system_category()};
      if (pid > 0) ::_exit(0);  // the orphan goes on; exec errors still reach the parent
    } else if (::setpgid(0, 0) != 0) {
      return {errno, bp::system_category()};
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGHUP, SIGQUIT})
      ::signal(sig, SIG_DFL);
    for (int fd : *inherit)
      ::fcntl(fd, F_SETFD, 0);
    // The namespace first: creating it needs the privileges dropped below.
    if (isolate_network) {
      if (::unshare(CLONE_NEWNET) != 0) return fail(Step::kUnshareNet);
      if (!loopback_up()) return fail(Step::kLoopbackUp);
    }
    if (run_as) {
      // Groups before ids: once the uid is dropped, groups can no longer change.
      if (::setgroups(run_as->groups.size(), run_as->groups.data()) != 0)
        return fail(Step::kSetgroups);
      if (::setgid(run_as->gid) != 0) return fail(Step::kSetgid);
      if (::setuid(run_as->uid) != 0) return fail(Step::kSetuid);
      if (!dropped_for_good()) {
        errno = EPERM;
        return fail(Step::kVerify);
      }
    }
    // After the credential change, which clears the parent-death signal.
    if (die_with_parent && !detach) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // parent died before prctl
    }
    return {};
  }

 private:
  bp::error_code fail(Step step) const {
    int err = errno;
    IsolationReport r{static_cast<int>(step), err};
    if (report_fd >= 0) (void)!::write(report_fd, &r, sizeof r);
    errno = err;  // Boost reports errno, not the returned code
    return {err, bp::system_category()};
  }

  // A fresh network namespace has lo, down; without it even 127.0.0.1 fails.
  static bool loopback_up() {
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return false;
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, "lo", 3);
    bool ok = ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
    if (ok) {
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
      ok = ::ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
    }
    int err = errno;
    ::close(s);
    errno = err;
    return ok;
  }

  // Real, effective and saved ids are the user's, and root's cannot come back.
  [[nodiscard]] bool dropped_for_good() const {
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (::getresuid(&ru, &eu, &su) != 0 || ::getresgid(&rg, &eg, &sg) != 0) return false;
    if (ru != run_as->uid || eu != run_as->uid || su != run_as->uid) return false;
    if (rg != run_as->gid || eg != run_as->gid || sg != run_as->gid) return false;
    if (run_as->uid != 0 && ::setuid(0) == 0) return false;
    if (run_as->uid != 0 && run_as->gid != 0 && ::setgid(0) == 0) return false;
    return true;
  }
};

}  // namespace

bool is_isolation_error(const std::error_code& ec) {
  return dynamic_cast<const IsolationCategory*>(&ec.category()) != nullptr;
}

std::optional<Child> Child::spawn(const SpawnOptions& options, std::error_code& ec) {
  ec.clear();
  UniqueFd read_end;
  UniqueFd write_end;
  int out = options.output_fd;
  if (out < 0) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
      ec.assign(errno, std::generic_category());
      return std::nullopt;
    }
    read_end.reset(p[0]);
    write_end.reset(p[1]);
    out = p[1];
  }

  std::vector<const char*> envp;
  envp.reserve(options.env.size() + 1);
  for (const auto& e : options.env)
    envp.push_back(e.c_str());
  envp.push_back(nullptr);

  UniqueFd report_read;
  UniqueFd report_write;
  if (options.isolate_network || options.run_as) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
      ec.assign(errno, std::generic_category());
      return std::nullopt;
    }
    report_read.reset(p[0]);
    report_write.reset(p[1]);
  }

  boost::asio::io_context ctx;
  bp::posix::default_launcher launcher;
  launcher.env = envp.data();
  GroupLeaderInit group{.die_with_parent = options.die_with_parent,
                        .detach = options.detach,
                        .parent = ::getpid(),
                        .inherit = &options.inherit_fds,
                        .isolate_network = options.isolate_network,
                        .run_as = options.run_as ? &*options.run_as : nullptr,
                        .report_fd = report_write.get()};
  bp::error_code bec;
  std::optional<bp::process> proc;
  if (options.cwd.empty()) {
    proc.emplace(launcher(ctx.get_executor(), bec, bp::filesystem::path(options.executable),
                          options.args, bp::process_stdio{nullptr, out, out}, group));
  } else {
    proc.emplace(launcher(ctx.get_executor(), bec, bp::filesystem::path(options.executable),
                          options.args, bp::process_stdio{nullptr, out, out},
                          bp::process_start_dir{options.cwd}, group));
  }
  if (bec) {
    // The launcher returns once the child has exec'd or failed, so a report
    // written before the failure is already in the pipe.
    IsolationReport r{};
    if (report_read && ::read(report_read.get(), &r, sizeof r) == sizeof r &&
        r.step >= static_cast<int>(Step::kUnshareNet) &&
        r.step <= static_cast<int>(Step::kVerify)) {
      ec.assign(r.err, isolation_category(static_cast<Step>(r.step)));
    } else {
      ec.assign(bec.value(), std::generic_category());
    }
    return std::nullopt;
  }
  Child child;
  child.pid_ = proc->id();
  child.detached_ = options.detach;
  // Take ownership of the pid: Boost would SIGKILL only the leader on destruction.
  // Our own pidfd (Boost 1.81 exposes none); pidfds are close-on-exec.
  child.pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, child.pid_, 0)));
  (void)proc->detach();
  if (read_end) {
    ::fcntl(read_end.get(), F_SETFL, ::fcntl(read_end.get(), F_GETFL) | O_NONBLOCK);
    child.output_ = std::move(read_end);
  }
  return child;
}

Child::Child(Child&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      detached_(other.detached_),
      status_(other.status_),
      pidfd_(std::move(other.pidfd_)),
      output_(std::move(other.output_)) {}

Child& Child::operator=(Child&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !status_) terminate(std::chrono::milliseconds(0));
    pid_ = std::exchange(other.pid_, -1);
    detached_ = other.detached_;
    status_ = other.status_;
    pidfd_ = std::move(other.pidfd_);
    output_ = std::move(other.output_);
  }
  return *this;
}

Child::~Child() {
  if (pid_ > 0 && !status_) terminate(std::chrono::milliseconds(0));
}

std::optional<int> Child::try_wait() {
  if (status_ || pid_ <= 0) return status_;
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) status_ = st;
  return status_;
}

int Child::wait() {
  if (status_ || pid_ <= 0) return status_.value_or(0);
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, 0);
  } while (r < 0 && errno == EINTR);
  status_ = (r == pid_) ? st : 0;
  return *status_;
}

void Child::signal_group(int sig) const {
  if (pid_ > 0 && !detached_) ::kill(-pid_, sig);
}

int Child::terminate(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return status_.value_or(0);
  if (!status_) {
    if (grace.count() > 0) {
      signal_group(SIGTERM);
      pollfd pfd{pidfd_.get(), POLLIN, 0};
      auto until = std::chrono::steady_clock::now() + grace;
      while (!try_wait()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        ::poll(&pfd, 1, static_cast<int>(left.count()));
      }
    }
    if (!status_) {
      signal_group(SIGKILL);
      wait();
    }
  }
  // Grandchildren that outlived the leader (same group) go too.
  signal_group(SIGKILL);
  return *status_;
}

int Child::shell_status(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 1;
}

RunOutcome run_streaming(SpawnOptions options, Deadline deadline, const LineSink& on_line,
                         const PollHook& poll_hook, std::chrono::milliseconds grace) {
  RunOutcome result;
  options.output_fd = -1;
  std::error_code ec;
  auto child = Child::spawn(options, ec);
  if (!child) {
    result.spawn_failed = true;
    result.spawn_error = options.executable + ": " + ec.message();
    return result;
  }

  std::string pending;
  auto flush_lines = [&](bool all) {
    std::size_t start = 0;
    for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(pending.data() + start, nl - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      on_line(line);
    }
    pending.erase(0, start);
    if (all && !pending.empty()) {
      on_line(pending);
      pending.clear();
    }
  };
  auto drain = [&]() -> bool {  // false on EOF
    char buf[8192];
    for (;;) {
      ssize_t n = ::read(child->output_fd(), buf, sizeof buf);
      if (n > 0) {
        pending.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      flush_lines(false);
      return n < 0;  // EAGAIN: more may come; 0: EOF
    }
  };

  bool eof = false;
  auto next_hook = std::chrono::steady_clock::now();
  while (!eof) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      result.timed_out = true;
      break;
    }
    if (poll_hook && now >= next_hook) {
      next_hook = now + std::chrono::milliseconds(200);
      result.stopped_because = poll_hook();
      if (!result.stopped_because.empty()) break;
    }
    auto until = std::min(deadline, poll_hook ? next_hook : deadline);
    auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
    pollfd pfd{child->output_fd(), POLLIN, 0};
    int r = ::poll(&pfd, 1, static_cast<int>(std::clamp<long long>(wait_ms, 1, 1000)));
    if (r > 0) eof = !drain();
  }
  if (eof) {
    // Output closed: the leader is exiting. Reap it, bounded by the deadline.
    pollfd pfd{child->exit_fd(), POLLIN, 0};
    while (!child->try_wait()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        result.timed_out = true;
        break;
      }
      ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    }
  }
  result.wait_status = child->terminate(grace);
  drain();
  flush_lines(true);
  return result;
}

}  // namespace clsi
