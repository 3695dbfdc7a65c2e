#include "clsi/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/process/v2/posix/default_launcher.hpp>
#include <boost/process/v2/process.hpp>
#include <boost/process/v2/start_dir.hpp>
#include <boost/process/v2/stdio.hpp>
#include <cerrno>
#include <thread>

namespace bp = boost::process::v2;

namespace clsi {
namespace {

// Runs in the forked child, before exec: only async-signal-safe calls.
struct GroupLeaderInit {
  bool die_with_parent;
  bool detach;
  pid_t parent;
  const std::vector<int>* inherit;

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
    if (die_with_parent && !detach) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // parent died before prctl
    }
    return {};
  }
};

}  // namespace

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

  boost::asio::io_context ctx;
  bp::posix::default_launcher launcher;
  launcher.env = envp.data();
  GroupLeaderInit group{options.die_with_parent, options.detach, ::getpid(), &options.inherit_fds};
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
    ec.assign(bec.value(), std::generic_category());
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
