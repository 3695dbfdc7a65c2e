// A contained child (SpawnOptions::contain_tree): its supervisor holds the
// whole tree, passes the program's status through and keeps the host's open
// file descriptions (leases) until the last process of the tree is gone.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "clsi/child_process.hpp"
#include "test_env.hpp"

namespace {

clsi::SpawnOptions shell(const std::string& script) {
  clsi::SpawnOptions o;
  o.executable = "/bin/sh";
  o.args = {"-c", script};
  o.env = {"PATH=/usr/bin:/bin"};
  o.output_fd = 2;
  o.contain_tree = true;
  return o;
}

bool alive(pid_t pid) {
  return pid > 0 && ::kill(pid, 0) == 0;
}

pid_t wait_for_pid_file(const std::string& path) {
  for (int i = 0; i < 400; ++i) {
    auto text = testenv::read_file(path);
    if (!text.empty() && text.back() == '\n') return static_cast<pid_t>(std::atoi(text.c_str()));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

// An exclusive OFD lock on `path` through a new open file description.
bool can_lock(const std::string& path) {
  clsi::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  return fd && ::fcntl(fd.get(), F_OFD_SETLK, &fl) == 0;
}

}  // namespace

TEST_CASE("contained: the program's exit status and signal come through", "[child]") {
  std::error_code ec;
  auto exits = clsi::Child::spawn(shell("exit 3"), ec);
  REQUIRE(exits);
  CHECK(clsi::Child::shell_status(exits->wait()) == 3);
  auto killed = clsi::Child::spawn(shell("kill -USR1 $$"), ec);
  REQUIRE(killed);
  int ws = killed->wait();
  CHECK(WIFSIGNALED(ws));
  CHECK(WTERMSIG(ws) == SIGUSR1);
}

TEST_CASE("contained: a program that cannot start is an error, not a child", "[child]") {
  auto o = shell("");
  o.executable = "/nonexistent/program";
  std::error_code ec;
  auto child = clsi::Child::spawn(o, ec);
  CHECK_FALSE(child);
  CHECK(ec == std::errc::no_such_file_or_directory);
  o = shell("");
  o.cwd = "/nonexistent/dir";
  CHECK_FALSE(clsi::Child::spawn(o, ec));
  CHECK(ec == std::errc::no_such_file_or_directory);
}

TEST_CASE("contained: output through a pipe ends when the tree is gone", "[child]") {
  auto o = shell("echo hello; setsid sleep 30 & exit 0");
  o.output_fd = -1;
  std::error_code ec;
  auto child = clsi::Child::spawn(o, ec);
  REQUIRE(child);
  std::string out;
  for (;;) {
    pollfd pfd{child->output_fd(), POLLIN, 0};
    REQUIRE(::poll(&pfd, 1, 10000) == 1);
    char buf[256];
    ssize_t n = ::read(child->output_fd(), buf, sizeof buf);
    if (n < 0 && errno == EAGAIN) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  CHECK(out == "hello\n");
  CHECK(clsi::Child::shell_status(child->wait()) == 0);
}

TEST_CASE("contained: when the program ends, what it left in other sessions goes too", "[child]") {
  testenv::TempDir tmp;
  std::string pidfile = tmp / "escaped.pid";
  // Two levels deep, in a session of its own, ignoring TERM.
  std::error_code ec;
  auto child =
      clsi::Child::spawn(shell("sh -c 'setsid sh -c \"trap \\\"\\\" TERM; echo \\$\\$ > " +
                               pidfile + "; while :; do sleep 1; done\" &' ; while [ ! -s " +
                               pidfile + " ]; do sleep 0.01; done"),
                         ec);
  REQUIRE(child);
  pid_t escaped = wait_for_pid_file(pidfile);
  REQUIRE(escaped > 0);
  CHECK(clsi::Child::shell_status(child->wait()) == 0);
  // wait() returns once the supervisor has reaped the whole tree.
  CHECK_FALSE(alive(escaped));
}

TEST_CASE("contained: signal_group and terminate reach the program", "[child]") {
  std::error_code ec;
  testenv::TempDir tmp0;
  std::string trapped = tmp0 / "trapped";
  auto child = clsi::Child::spawn(
      shell("trap 'exit 7' TERM; echo $$ > " + trapped + "; while :; do sleep 0.05; done"), ec);
  REQUIRE(child);
  REQUIRE(wait_for_pid_file(trapped) > 0);
  child->signal_group(SIGTERM);
  CHECK(clsi::Child::shell_status(child->wait()) == 7);

  testenv::TempDir tmp;
  std::string ready = tmp / "ready";
  auto stubborn = clsi::Child::spawn(
      shell("trap '' TERM; echo $$ > " + ready + "; while :; do sleep 0.05; done"), ec);
  REQUIRE(stubborn);
  REQUIRE(wait_for_pid_file(ready) > 0);  // TERM is ignored from here on
  int ws = stubborn->terminate(std::chrono::milliseconds(200));
  CHECK(WIFSIGNALED(ws));
  CHECK(WTERMSIG(ws) == SIGKILL);
}

TEST_CASE("contained: the host's locks are held until the last process of the tree is gone",
          "[child]") {
  testenv::TempDir tmp;
  std::string lock = tmp / "key.lock";
  std::string pidfile = tmp / "escaped.pid";
  testenv::write_file(lock, "");
  // The host's lease: a shared OFD lock, close-on-exec like the plugin's.
  clsi::UniqueFd lease(::open(lock.c_str(), O_RDONLY | O_CLOEXEC));
  struct flock fl {};
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  REQUIRE(::fcntl(lease.get(), F_OFD_SETLK, &fl) == 0);
  REQUIRE_FALSE(can_lock(lock));

  std::error_code ec;
  auto child = clsi::Child::spawn(
      shell("setsid sh -c 'echo $$ > " + pidfile + "; exec sleep 30' & sleep 30"), ec);
  REQUIRE(child);
  pid_t escaped = wait_for_pid_file(pidfile);
  REQUIRE(alive(escaped));
  lease.reset();  // as a host that dies would lose it
  CHECK_FALSE(can_lock(lock));
  child->terminate(std::chrono::milliseconds(100));
  CHECK_FALSE(alive(escaped));
  CHECK(can_lock(lock));
}

TEST_CASE("contained: destroying the Child kills the tree", "[child]") {
  testenv::TempDir tmp;
  std::string pidfile = tmp / "escaped.pid";
  pid_t escaped = -1;
  {
    std::error_code ec;
    auto child = clsi::Child::spawn(
        shell("setsid sh -c 'echo $$ > " + pidfile + "; exec sleep 30' & sleep 30"), ec);
    REQUIRE(child);
    escaped = wait_for_pid_file(pidfile);
    REQUIRE(alive(escaped));
  }
  CHECK_FALSE(alive(escaped));
}

TEST_CASE("child: stdin from input_fd, then followed to the end by run_to_end", "[child]") {
  for (bool contained : {false, true}) {
    INFO("contain_tree " << contained);
    int pair[2];
    REQUIRE(::pipe2(pair, O_CLOEXEC) == 0);
    clsi::SpawnOptions o = shell("read line; echo \"got: $line\"; exit 3");
    o.output_fd = -1;  // a pipe, read by run_to_end
    o.contain_tree = contained;
    o.input_fd = pair[0];
    std::error_code ec;
    auto child = clsi::Child::spawn(o, ec);
    ::close(pair[0]);
    REQUIRE(child);
    // Started first, told what to do later: what a pip started ahead is.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    REQUIRE(::write(pair[1], "hello\n", 6) == 6);
    ::close(pair[1]);
    std::vector<std::string> lines;
    auto r = clsi::run_to_end(*child, std::chrono::steady_clock::now() + std::chrono::seconds(20),
                              [&](std::string_view l) { lines.emplace_back(l); });
    CHECK_FALSE(r.timed_out);
    CHECK(clsi::Child::shell_status(r.wait_status) == 3);
    CHECK(lines == std::vector<std::string>{"got: hello"});
  }
  // Without input_fd, stdin is /dev/null.
  std::vector<std::string> lines;
  clsi::SpawnOptions o = shell("if read line; then echo read; else echo eof; fi");
  o.output_fd = -1;
  o.contain_tree = false;
  auto r = clsi::run_streaming(o, std::chrono::steady_clock::now() + std::chrono::seconds(20),
                               [&](std::string_view l) { lines.emplace_back(l); });
  CHECK(r.ok());
  CHECK(lines == std::vector<std::string>{"eof"});
}
