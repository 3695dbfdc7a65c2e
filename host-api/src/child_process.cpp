#include "clsi/child_process.hpp"

#include <dirent.h>
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

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include "clsi/errno_text.hpp"

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

// A fresh network namespace has lo, down; without it even 127.0.0.1 fails.
bool loopback_up() {
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
bool dropped_for_good(const RunAs& run_as) {
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (::getresuid(&ru, &eu, &su) != 0 || ::getresgid(&rg, &eg, &sg) != 0) return false;
  if (ru != run_as.uid || eu != run_as.uid || su != run_as.uid) return false;
  if (rg != run_as.gid || eg != run_as.gid || sg != run_as.gid) return false;
  if (run_as.uid != 0 && ::setuid(0) == 0) return false;
  if (run_as.uid != 0 && run_as.gid != 0 && ::setgid(0) == 0) return false;
  return true;
}

// Everything the program's own process does before exec, in a forked child:
// only async-signal-safe calls. Returns 0, or the Step that failed (errno set).
int prepare_program(const std::vector<int>& inherit, bool isolate_network, const RunAs* run_as,
                    bool die_with_parent, pid_t parent) {
  sigset_t none;
  sigemptyset(&none);
  ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
  // Ignored signals stay ignored across exec: the program starts with every
  // disposition at its default, whatever the host or a supervisor ignores.
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) (void)::signal(sig, SIG_DFL);
  for (int fd : inherit)
    ::fcntl(fd, F_SETFD, 0);
  // The namespace first: creating it needs the privileges dropped below.
  if (isolate_network) {
    if (::unshare(CLONE_NEWNET) != 0) return static_cast<int>(Step::kUnshareNet);
    if (!loopback_up()) return static_cast<int>(Step::kLoopbackUp);
  }
  if (run_as) {
    // Groups before ids: once the uid is dropped, groups can no longer change.
    if (::setgroups(run_as->groups.size(), run_as->groups.data()) != 0)
      return static_cast<int>(Step::kSetgroups);
    if (::setgid(run_as->gid) != 0) return static_cast<int>(Step::kSetgid);
    if (::setuid(run_as->uid) != 0) return static_cast<int>(Step::kSetuid);
    if (!dropped_for_good(*run_as)) {
      errno = EPERM;
      return static_cast<int>(Step::kVerify);
    }
  }
  // After the credential change, which clears the parent-death signal.
  if (die_with_parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // parent died before prctl
  }
  return 0;
}

// --- The supervisor of a contained tree (SpawnOptions::contain_tree) ---
//
// All of this runs in forked children of a process that may have threads:
// only async-signal-safe calls, nothing allocated. The control socket
// carries, from the host, one byte per signal for the program's group and,
// from the supervisor, the program's wait status just before it exits; its
// end of file tells the supervisor that the host is gone.

// Everything both children need, prepared by the host before fork.
struct ExecPlan {
  const char* exe;
  char* const* argv;
  char* const* envp;
  const char* cwd;    // null: inherit
  int in;             // the program's stdin (/dev/null unless SpawnOptions::input_fd)
  int out;            // the program's stdout and stderr
  int out_pipe_read;  // the host's end of an output pipe, or -1
  int err_write;      // IsolationReport on a failure before exec
  int err_read;       // the host's end of it
  int control;        // the supervisor's end of the control socket
  int host_control;   // the host's end
  const std::vector<int>* inherit;
  const int* keep;  // sorted: descriptors that stay open up to exec
  std::size_t keep_count;
  bool isolate_network;
  const RunAs* run_as;
};

[[noreturn]] void report_and_exit(int err_fd, int step) {
  IsolationReport r{step, errno};
  (void)!::write(err_fd, &r, sizeof r);
  ::_exit(127);
}

// Closes every descriptor from 3 up except the sorted `keep`.
void close_all_but(const int* keep, std::size_t n) {
  unsigned lo = 3;
  for (std::size_t i = 0; i < n; ++i) {
    auto fd = static_cast<unsigned>(keep[i]);
    if (fd < lo) continue;
    if (fd > lo) ::close_range(lo, fd - 1, 0);
    lo = fd + 1;
  }
  ::close_range(lo, ~0U, 0);
}

// The program's own process, from fork to exec: the leader of a new process
// group, or with `detach` the orphan of a second fork in a new session.
// `parent`: whose death kills it, with `die_with_parent`.
[[noreturn]] void exec_program(const ExecPlan& p, pid_t parent, bool die_with_parent, bool detach) {
  if (detach) {
    if (::setsid() < 0) report_and_exit(p.err_write, 0);
    pid_t orphan = ::fork();
    if (orphan < 0) report_and_exit(p.err_write, 0);
    if (orphan > 0) ::_exit(0);  // the orphan goes on; its exec errors still reach the host
  } else if (::setpgid(0, 0) != 0) {
    report_and_exit(p.err_write, 0);
  }
  if (p.cwd != nullptr && ::chdir(p.cwd) != 0) report_and_exit(p.err_write, 0);
  if (int step = prepare_program(*p.inherit, p.isolate_network, p.run_as,
                                 die_with_parent && !detach, parent);
      step != 0)
    report_and_exit(p.err_write, step);
  if (::dup2(p.in, 0) < 0 || ::dup2(p.out, 1) < 0 || ::dup2(p.out, 2) < 0)
    report_and_exit(p.err_write, 0);
  for (int fd = 0; fd < 3; ++fd)
    ::fcntl(fd, F_SETFD, 0);  // dup2 onto itself keeps close-on-exec
  close_all_but(p.keep, p.keep_count);
  ::execve(p.exe, p.argv, p.envp);
  report_and_exit(p.err_write, 0);
}

// What the fork of a program needs, all made before the fork: after it, in a
// process that may have threads, the child may not allocate (a lock another
// thread held at the fork stays held in the child: glibc's malloc has fork
// handlers, ThreadSanitizer's allocator had none, and Boost.Process's
// launcher allocated in the child).
class Launch {
 public:
  static std::optional<Launch> make(const SpawnOptions& o, std::error_code& ec) {
    Launch l;
    l.argv_text_.reserve(o.args.size() + 1);
    l.argv_text_.push_back(o.executable);
    l.argv_text_.insert(l.argv_text_.end(), o.args.begin(), o.args.end());
    // Pointers into the strings' own storage: a vector that is moved keeps
    // its elements where they are.
    for (auto& a : l.argv_text_)
      l.argv_.push_back(a.data());
    l.argv_.push_back(nullptr);
    l.env_text_ = o.env;
    for (auto& e : l.env_text_)
      l.envp_.push_back(e.data());
    l.envp_.push_back(nullptr);
    l.out_ = o.output_fd;
    int p[2];
    if (l.out_ < 0) {
      if (::pipe2(p, O_CLOEXEC) != 0) return fail(ec);
      l.out_read_.reset(p[0]);
      l.out_write_.reset(p[1]);
      l.out_ = p[1];
    }
    if (o.input_fd < 0) {
      l.devnull_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      if (!l.devnull_) return fail(ec);
    }
    if (::pipe2(p, O_CLOEXEC) != 0) return fail(ec);
    l.err_read_.reset(p[0]);
    l.err_write_.reset(p[1]);
    l.keep_ = o.inherit_fds;
    l.keep_.push_back(l.err_write_.get());
    std::sort(l.keep_.begin(), l.keep_.end());
    l.keep_.erase(std::unique(l.keep_.begin(), l.keep_.end()), l.keep_.end());
    return l;
  }

  [[nodiscard]] ExecPlan plan(const SpawnOptions& o) const {
    return {.exe = argv_[0],
            .argv = argv_.data(),
            .envp = envp_.data(),
            .cwd = o.cwd.empty() ? nullptr : o.cwd.c_str(),
            .in = o.input_fd >= 0 ? o.input_fd : devnull_.get(),
            .out = out_,
            .out_pipe_read = out_read_.get(),
            .err_write = err_write_.get(),
            .err_read = err_read_.get(),
            .control = -1,
            .host_control = -1,
            .inherit = &o.inherit_fds,
            .keep = keep_.data(),
            .keep_count = keep_.size(),
            .isolate_network = o.isolate_network,
            .run_as = o.run_as ? &*o.run_as : nullptr};
  }

  // After the fork: whether what was forked reported a failure before exec
  // (then `ec` says which); waits for that exec. The host's copies of what
  // the program alone needs are closed first.
  bool failed_to_start(std::error_code& ec) {
    err_write_.reset();
    out_write_.reset();
    devnull_.reset();
    IsolationReport r{};
    ssize_t got;
    do {
      got = ::read(err_read_.get(), &r, sizeof r);
    } while (got < 0 && errno == EINTR);
    if (got != sizeof r) return false;
    if (r.step >= static_cast<int>(Step::kUnshareNet) && r.step <= static_cast<int>(Step::kVerify))
      ec.assign(r.err, isolation_category(static_cast<Step>(r.step)));
    else
      ec.assign(r.err, std::generic_category());
    return true;
  }

  // The read end of the output pipe, non-blocking (none with output_fd).
  UniqueFd output() {
    if (out_read_)
      ::fcntl(out_read_.get(), F_SETFL, ::fcntl(out_read_.get(), F_GETFL) | O_NONBLOCK);
    return std::move(out_read_);
  }

 private:
  static std::optional<Launch> fail(std::error_code& ec) {
    ec.assign(errno, std::generic_category());
    return std::nullopt;
  }
  std::vector<std::string> argv_text_, env_text_;
  std::vector<char*> argv_, envp_;
  int out_ = -1;
  UniqueFd out_read_, out_write_, devnull_, err_read_, err_write_;
  std::vector<int> keep_;
};

// Decimal digits only, else -1.
pid_t parse_pid(const char* s) {
  if (*s == '\0') return -1;
  long v = 0;
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9' || v > 1000000000L) return -1;
    v = v * 10 + (*s - '0');
  }
  return static_cast<pid_t>(v);
}

// The parent of `pid`, from /proc/<pid>/stat ("pid (comm) S ppid ..."), or -1.
pid_t parent_of(pid_t pid) {
  char path[40] = "/proc/";
  char digits[16];
  int n = 0;
  for (auto v = static_cast<unsigned>(pid); n == 0 || v != 0; v /= 10)
    digits[n++] = static_cast<char>('0' + v % 10);
  int at = 6;
  while (n > 0)
    path[at++] = digits[--n];
  for (const char* tail = "/stat"; *tail != '\0'; ++tail)
    path[at++] = *tail;
  path[at] = '\0';
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[512];
  ssize_t len = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (len <= 0) return -1;
  // comm may hold ')' and spaces: the state follows the last ')'.
  ssize_t close_paren = -1;
  for (ssize_t i = 0; i < len; ++i)
    if (buf[i] == ')') close_paren = i;
  ssize_t i = close_paren + 4;  // past ") S "
  if (close_paren < 0 || i >= len) return -1;
  long v = 0;
  for (; i < len && buf[i] >= '0' && buf[i] <= '9'; ++i)
    v = v * 10 + (buf[i] - '0');
  return static_cast<pid_t>(v);
}

// SIGKILL to every living child of this process. A subreaper's children are
// the tree's orphans: whatever outlived its parent is handed to us.
void kill_children(pid_t self) {
  int dir = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return;
  alignas(dirent64) char buf[8192];
  for (;;) {
    ssize_t n = ::getdents64(dir, buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      const auto* entry = reinterpret_cast<const dirent64*>(buf + off);
      off += entry->d_reclen;
      pid_t pid = parse_pid(entry->d_name);
      if (pid > 0 && parent_of(pid) == self) ::kill(pid, SIGKILL);
    }
  }
  ::close(dir);
}

// Kills and reaps what is left of the tree: every child, then every orphan
// handed to us as its parent dies, until no child is left. Each death of a
// child wakes the wait, so a new orphan is always seen by the next pass.
void reap_tree(pid_t self) {
  for (;;) {
    kill_children(self);
    int st = 0;
    pid_t r = ::waitpid(-1, &st, 0);
    if (r < 0 && errno != EINTR) return;  // ECHILD: the tree is gone
  }
}

[[noreturn]] void run_supervisor(const ExecPlan& p, pid_t host) {
  ::close(p.host_control);
  ::close(p.err_read);
  if (p.out_pipe_read >= 0) ::close(p.out_pipe_read);
  // Signals meant for the host (a terminal's ^C, a stop) must not take the
  // supervisor away from the tree it guards.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2})
    ::sigaction(sig, &ignore, nullptr);
  struct sigaction deflt {};
  deflt.sa_handler = SIG_DFL;
  ::sigaction(SIGCHLD, &deflt, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  if (::getppid() != host) ::_exit(1);  // the host died before the program started
  pid_t self = ::getpid();
  pid_t program = ::fork();
  if (program == 0) exec_program(p, self, true, false);
  if (program < 0) report_and_exit(p.err_write, 0);
  ::close(p.err_write);
  ::close(p.in);
  if (p.out_pipe_read >= 0) ::close(p.out);  // so the host sees the end of output

  int exit_fd = static_cast<int>(::syscall(SYS_pidfd_open, program, 0));
  int status = 0;
  bool reaped = false;
  for (;;) {
    pollfd fds[2] = {{p.control, POLLIN, 0}, {exit_fd, POLLIN, 0}};
    int n = ::poll(fds, exit_fd >= 0 ? 2 : 1, exit_fd >= 0 ? -1 : 100);
    if (n < 0 && errno != EINTR) break;
    siginfo_t info{};
    bool exited = (fds[1].revents & POLLIN) != 0;
    if (exit_fd < 0)
      exited =
          ::waitid(P_PID, static_cast<id_t>(program), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == program;
    if (exited) {
      // The leader is a zombie until reaped, so its group id cannot be
      // reused yet: the group's stragglers go now, the rest of the tree below.
      ::kill(-program, SIGKILL);
      while (::waitpid(program, &status, 0) < 0 && errno == EINTR) {
      }
      reaped = true;
      break;
    }
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      unsigned char sigs[16];
      ssize_t got = ::read(p.control, sigs, sizeof sigs);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) {  // the host is gone, however it went
        ::kill(-program, SIGKILL);
        break;
      }
      for (ssize_t i = 0; i < got; ++i)
        ::kill(-program, sigs[i]);
    }
  }
  if (!reaped) {
    ::kill(-program, SIGKILL);
    while (::waitpid(program, &status, 0) < 0 && errno == EINTR) {
    }
  }
  reap_tree(self);
  (void)!::send(p.control, &status, sizeof status, MSG_NOSIGNAL);
  ::_exit(0);
}

}  // namespace

bool is_isolation_error(const std::error_code& ec) {
  return dynamic_cast<const IsolationCategory*>(&ec.category()) != nullptr;
}

std::optional<Child> Child::spawn_contained(const SpawnOptions& options, std::error_code& ec) {
  auto launch = Launch::make(options, ec);
  if (!launch) return std::nullopt;
  int control[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, control) != 0) {
    ec.assign(errno, std::generic_category());
    return std::nullopt;
  }
  UniqueFd host_end(control[0]);
  UniqueFd supervisor_end(control[1]);
  ExecPlan plan = launch->plan(options);
  plan.control = supervisor_end.get();
  plan.host_control = host_end.get();
  pid_t host = ::getpid();
  pid_t supervisor = ::fork();
  if (supervisor < 0) {
    ec.assign(errno, std::generic_category());
    return std::nullopt;
  }
  if (supervisor == 0) run_supervisor(plan, host);
  supervisor_end.reset();

  Child child;
  child.pid_ = supervisor;
  child.contained_ = true;
  child.pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, supervisor, 0)));
  child.control_ = std::move(host_end);
  // Closed at the program's exec (or by the supervisor when it cannot fork):
  // a report before that is a failure to start.
  if (launch->failed_to_start(ec)) {
    child.wait();
    return std::nullopt;
  }
  child.output_ = launch->output();
  return child;
}

std::optional<Child> Child::spawn(const SpawnOptions& options, std::error_code& ec) {
  ec.clear();
  if (options.contain_tree && !options.detach) return spawn_contained(options, ec);
  auto launch = Launch::make(options, ec);
  if (!launch) return std::nullopt;
  const ExecPlan plan = launch->plan(options);
  pid_t host = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ec.assign(errno, std::generic_category());
    return std::nullopt;
  }
  if (pid == 0) exec_program(plan, host, options.die_with_parent, options.detach);
  Child child;
  child.pid_ = pid;
  child.detached_ = options.detach;
  child.pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (launch->failed_to_start(ec)) {
    child.wait();
    return std::nullopt;
  }
  child.output_ = launch->output();
  return child;
}

Child::Child(Child&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      detached_(other.detached_),
      contained_(other.contained_),
      status_(other.status_),
      pidfd_(std::move(other.pidfd_)),
      output_(std::move(other.output_)),
      control_(std::move(other.control_)) {}

Child& Child::operator=(Child&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !status_) terminate(std::chrono::milliseconds(0));
    pid_ = std::exchange(other.pid_, -1);
    detached_ = other.detached_;
    contained_ = other.contained_;
    status_ = other.status_;
    pidfd_ = std::move(other.pidfd_);
    output_ = std::move(other.output_);
    control_ = std::move(other.control_);
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
  if (r == pid_) take_status(st);
  return status_;
}

int Child::wait() {
  if (status_ || pid_ <= 0) return status_.value_or(0);
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, 0);
  } while (r < 0 && errno == EINTR);
  if (r == pid_)
    take_status(st);
  else
    status_ = 0;
  return *status_;
}

void Child::take_status(int wait_status) {
  status_ = wait_status;
  if (!contained_) return;
  // The supervisor sends the program's status just before it exits; without
  // it (the supervisor itself was killed) its own status is all there is.
  int program_status = 0;
  if (control_ && ::recv(control_.get(), &program_status, sizeof program_status, MSG_DONTWAIT) ==
                      static_cast<ssize_t>(sizeof program_status))
    status_ = program_status;
  control_.reset();
}

void Child::signal_group(int sig) const {
  if (contained_) {
    // Only the supervisor knows whether the group is still there.
    auto byte = static_cast<unsigned char>(sig);
    if (control_ && !status_) (void)::send(control_.get(), &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    return;
  }
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
  options.output_fd = -1;
  std::error_code ec;
  auto child = Child::spawn(options, ec);
  if (!child) {
    RunOutcome result;
    result.spawn_failed = true;
    result.spawn_error = options.executable + ": " + ec.message();
    return result;
  }
  return run_to_end(*child, deadline, on_line, poll_hook, grace);
}

RunOutcome run_to_end(Child& child_ref, Deadline deadline, const LineSink& on_line,
                      const PollHook& poll_hook, std::chrono::milliseconds grace) {
  RunOutcome result;
  Child* child = &child_ref;
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
