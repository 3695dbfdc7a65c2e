// A child process in its own process group that cannot outlive its owner.
//
// Launching is a fork and an exec of our own, with nothing allocated in
// between (Boost.Process v2's launcher allocated in the forked child, which in
// a process with threads may wait for ever on a lock another thread held at
// the fork: ThreadSanitizer's allocator did, with the build service's
// threads). After the launch this class owns the pid (and its pidfd) and the
// whole process group: destroying a Child that still runs kills the group
// (SIGKILL) and reaps the leader, so no path leaks a process.
//
// With SpawnOptions::contain_tree the program runs under a supervisor (see
// there), which holds the whole tree of processes, not only the group, and
// outlives this process just long enough to kill that tree.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "clsi/unique_fd.hpp"

namespace clsi {

// Who the program runs as. The caller resolves the user (passwd, group
// lists) beforehand: nothing between fork and exec may read files or allocate.
struct RunAs {
  uid_t uid = 0;
  gid_t gid = 0;              // primary group
  std::vector<gid_t> groups;  // supplementary groups (setgroups), e.g. from getgrouplist
};

struct SpawnOptions {
  std::string executable;         // absolute path; no PATH search
  std::vector<std::string> args;  // argv[1..]
  std::vector<std::string> env;   // complete environment, NAME=VALUE
  std::string cwd;                // empty: inherit
  // Where stdout and stderr go. -1: a pipe the caller reads via output_fd().
  int output_fd = -1;
  // What the program reads as stdin: a descriptor it gets as fd 0 (the caller
  // keeps, and closes, its own). -1: /dev/null.
  int input_fd = -1;
  // The child gets SIGKILL when the thread that spawned it exits
  // (PR_SET_PDEATHSIG). Leave on unless the child is deliberately detached.
  bool die_with_parent = true;
  // Detached: the program runs in a new session as an orphan (double fork),
  // so it outlives this process; the Child then only tracks the short-lived
  // intermediate. Implies !die_with_parent.
  bool detach = false;
  // Contained: the program runs under a supervisor, a fork of this process
  // that is a child subreaper and does nothing but wait. When this process
  // dies, however it dies (SIGKILL included), the supervisor kills every
  // process the program started, also those in sessions or groups of their
  // own, and only then exits. Being a fork, it keeps this process's open file
  // descriptions until then: a shared lock a plugin holds (a venv's lease)
  // lasts as long as any process of the program, never shorter. The Child
  // tracks the supervisor: exit_fd() becomes readable, and try_wait()
  // returns the program's wait status, once the whole tree is gone. Only
  // with output_fd set and without detach.
  bool contain_tree = false;
  // Descriptors the program inherits at the same numbers (all others close).
  std::vector<int> inherit_fds;
  // Sandboxing for compiles (clsi-runner's --no-network and --run-as). Applied
  // in the child after fork and before exec, network first (it needs root),
  // then setgroups -> setgid -> setuid, checked. A failure is an isolation
  // error (is_isolation_error) and the program does not run.
  // A new network namespace in which only loopback is up (CAP_SYS_ADMIN).
  bool isolate_network = false;
  // Run as this user (CAP_SETUID and CAP_SETGID). The caller sets HOME etc.
  // in `env`: the environment is not changed here.
  std::optional<RunAs> run_as;
};

// True when spawn failed in one of the isolation steps above rather than in
// exec: value() is the errno, message() names the step and the likely cause.
bool is_isolation_error(const std::error_code& ec);

class Child {
 public:
  // Starts the child as the leader of a new process group; stdin is
  // SpawnOptions::input_fd, by default /dev/null.
  static std::optional<Child> spawn(const SpawnOptions& options, std::error_code& ec);

  Child(Child&&) noexcept;
  Child& operator=(Child&&) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  // The leader's pid; with contain_tree, the supervisor's.
  [[nodiscard]] int pid() const { return pid_; }
  // Read end of the output pipe (non-blocking, close-on-exec), or -1.
  [[nodiscard]] int output_fd() const { return output_.get(); }
  // Becomes readable when the child exits (pidfd), for poll().
  [[nodiscard]] int exit_fd() const { return pidfd_.get(); }

  // Reaps the leader if it has exited; returns its wait status.
  std::optional<int> try_wait();
  // Blocks until the leader exits; returns its wait status.
  int wait();
  // Signals the whole group (ignores ESRCH); with contain_tree, through the
  // supervisor, which alone knows whether the group still exists.
  void signal_group(int sig) const;
  // TERM to the group; KILL after `grace`; reaps the leader and kills any
  // straggler of the group. Returns the leader's wait status.
  int terminate(std::chrono::milliseconds grace);

  // A wait status as a shell would report it: exit code, or 128+signal.
  static int shell_status(int wait_status);

 private:
  Child() = default;
  static std::optional<Child> spawn_contained(const SpawnOptions& options, std::error_code& ec);
  void take_status(int supervisor_status);
  int pid_ = -1;
  bool detached_ = false;   // the group is the orphan's: never signalled from here
  bool contained_ = false;  // pid_ is the supervisor's (contain_tree)
  std::optional<int> status_;
  UniqueFd pidfd_;
  UniqueFd output_;
  UniqueFd control_;  // contain_tree: our end of the supervisor's socket
};

// Runs a child to completion, streaming its combined output line by line to
// on_line, killing its group at `deadline`. Used for short helper commands.
struct RunResult {
  int wait_status = 0;
  bool timed_out = false;
  bool spawn_failed = false;
  std::string spawn_error;
  [[nodiscard]] bool ok() const { return !spawn_failed && !timed_out && wait_status == 0; }
};

using Deadline = std::chrono::steady_clock::time_point;
using LineSink = std::function<void(std::string_view line)>;
// `poll_hook` runs about every 200 ms while the child runs; returning a
// non-empty string stops the child (the string is the reason, in RunResult).
using PollHook = std::function<std::string()>;

struct RunOutcome : RunResult {
  std::string stopped_because;  // set when poll_hook stopped the child
};

RunOutcome run_streaming(SpawnOptions options, Deadline deadline, const LineSink& on_line,
                         const PollHook& poll_hook = {},
                         std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

// The same for a child spawned earlier with an output pipe (output_fd -1):
// its output from now on, until it exits or is stopped; it is reaped either
// way (terminated first when it is still running).
RunOutcome run_to_end(Child& child, Deadline deadline, const LineSink& on_line,
                      const PollHook& poll_hook = {},
                      std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

}  // namespace clsi
