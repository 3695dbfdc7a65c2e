// clsi-runner's --run-as and --no-network with real users, real processes
// and real network namespaces. Needs root; skipped (with a warning) otherwise.
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "test_env.hpp"

using testenv::run;

namespace {

// The test users must be able to run it: root's PATH may start with
// directories under /root (pyenv shims) that they cannot enter.
const std::string kPython = "/usr/bin/python3";

#define SKIP_UNLESS_ROOT()                                                   \
  do {                                                                       \
    if (::geteuid() != 0) {                                                  \
      WARN(                                                                  \
          "skipped: creating users, switching to them and creating network " \
          "namespaces needs root");                                          \
      SUCCEED();                                                             \
      return;                                                                \
    }                                                                        \
  } while (0)

std::string fixture(const std::string& name) {
  return std::string(CLSI_FIXTURE_DIR) + "/fixture_" + name + ".so";
}

// useradd/groupadd lock /etc/passwd; another test run may hold the lock briefly.
testenv::CommandResult admin(const std::vector<std::string>& argv) {
  testenv::CommandResult r;
  for (int attempt = 0; attempt < 10; ++attempt) {
    r = run(argv);
    if (r.status == 0 || r.output.find("lock") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return r;
}

// Removes a user and a group by name, if they exist, when it goes: a member
// of TestUser, so that a REQUIRE failing halfway through its constructor
// still cleans up what was created.
struct AccountsGone {
  std::string user;
  std::string group;
  AccountsGone(std::string u, std::string g) : user(std::move(u)), group(std::move(g)) {
    remove();  // left over by a run with the same pid that crashed
  }
  ~AccountsGone() { remove(); }
  AccountsGone(const AccountsGone&) = delete;
  AccountsGone& operator=(const AccountsGone&) = delete;
  void remove() const {
    // userdel also removes the user's own group (USERGROUPS_ENAB).
    if (::getpwnam(user.c_str())) admin({"/usr/sbin/userdel", user});
    if (::getgrnam(group.c_str())) admin({"/usr/sbin/groupdel", group});
  }
};

// A real user with its own primary group, one supplementary group and a home
// directory under a TempDir; removed again on destruction. The names carry
// the test's pid, so concurrent runs do not collide.
struct TestUser {
  testenv::TempDir tmp;
  std::string name = "clsi-test-render-" + std::to_string(::getpid());
  std::string extra_group = "clsi-test-grp-" + std::to_string(::getpid());
  AccountsGone gone{name, extra_group};
  std::string home = tmp / "home";
  uid_t uid = 0;
  gid_t gid = 0;
  gid_t extra_gid = 0;

  TestUser() {
    // The users must be able to reach what lies under the TempDir (0700).
    ::chmod(tmp.path().c_str(), 0755);
    auto g = admin({"/usr/sbin/groupadd", "--system", extra_group});
    INFO(g.output);
    REQUIRE(g.status == 0);
    auto u =
        admin({"/usr/sbin/useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
               home, "--shell", "/usr/sbin/nologin", "--groups", extra_group, name});
    INFO(u.output);
    REQUIRE(u.status == 0);
    passwd* pw = ::getpwnam(name.c_str());
    REQUIRE(pw != nullptr);
    uid = pw->pw_uid;
    gid = pw->pw_gid;
    group* gr = ::getgrnam(extra_group.c_str());
    REQUIRE(gr != nullptr);
    extra_gid = gr->gr_gid;
    REQUIRE(::mkdir(home.c_str(), 0700) == 0);
    REQUIRE(::chown(home.c_str(), uid, gid) == 0);
  }
  TestUser(const TestUser&) = delete;
  TestUser& operator=(const TestUser&) = delete;

  // A directory the user owns, for a compile that writes outputs.
  [[nodiscard]] std::string owned_dir(const std::string& rel) const {
    std::string d = tmp / rel;
    ::mkdir(d.c_str(), 0755);
    (void)::chown(d.c_str(), uid, gid);
    return d;
  }
};

std::vector<std::string> runner_argv(const std::string& dir, std::vector<std::string> plugins,
                                     std::vector<std::string> extra,
                                     std::vector<std::string> command,
                                     const std::string& config = "") {
  std::vector<std::string> a = {CLSI_RUNNER_PATH};
  for (auto& p : plugins)
    a.insert(a.end(), {"--plugin", p});
  if (!config.empty()) a.insert(a.end(), {"--plugin-config", config});
  a.insert(a.end(), {"--compile-dir", dir});
  a.insert(a.end(), extra.begin(), extra.end());
  a.emplace_back("--");
  a.insert(a.end(), command.begin(), command.end());
  return a;
}

// The value after "key=" on its own line in `log`, or "<missing>".
std::string field(const std::string& log, const std::string& key) {
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  }
  return "<missing>";
}

std::set<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::set<std::string> out;
  for (std::string w; in >> w;)
    out.insert(w);
  return out;
}

// A TCP listener on the host namespace's 127.0.0.1; connections complete in
// the backlog without accept().
class HostListener {
 public:
  HostListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 16) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("cannot listen on 127.0.0.1");
    }
    port_ = ntohs(a.sin_port);
  }
  ~HostListener() {
    if (fd_ >= 0) ::close(fd_);
  }
  HostListener(const HostListener&) = delete;
  HostListener& operator=(const HostListener&) = delete;
  [[nodiscard]] int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Prints the interfaces of the namespace it runs in, whether a server on its
// own 127.0.0.1 answers, and what connecting to the host's port did.
const char* const kNetProbe = R"PY(
import socket, sys
names = sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:])
print('interfaces=' + ','.join(names))
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname(), timeout=5); peer, _ = srv.accept()
c.sendall(b'ping'); print('own_loopback=' + peer.recv(4).decode())
try:
    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5).close()
    print('host_port=connected')
except OSError as e:
    print('host_port=' + type(e).__name__)
)PY";

}  // namespace

TEST_CASE("runner: --run-as runs the command with the user's uid, groups and HOME", "[run-as]") {
  SKIP_UNLESS_ROOT();
  TestUser user;
  std::string dir = user.owned_dir("compile");
  std::string who;
  SECTION("by name") {
    who = user.name;
  }
  SECTION("by numeric uid") {
    who = std::to_string(user.uid);
  }
  auto r = run(runner_argv(dir, {}, {"--run-as", who},
                           {"sh", "-c",
                            "echo uid=$(id -u); echo gids=$(id -G); echo home=$HOME; "
                            "echo user=$USER; echo logname=$LOGNAME; "
                            "touch written && echo wrote=yes; " +
                                kPython +
                                " -c 'import os; os.setuid(0)' 2>/dev/null; "
                                "echo setuid0=$?"}),
               {{"HOME", "/root"}, {"USER", "root"}, {"LOGNAME", "root"}});
  INFO(r.output);
  auto log = testenv::read_file(dir + "/output.log");
  INFO(log);
  CHECK(r.status == 0);
  CHECK(field(log, "uid") == std::to_string(user.uid));
  // Its own group and its supplementary group; none of root's.
  CHECK(words(field(log, "gids")) ==
        std::set<std::string>{std::to_string(user.gid), std::to_string(user.extra_gid)});
  CHECK(field(log, "home") == user.home);
  CHECK(field(log, "user") == user.name);
  CHECK(field(log, "logname") == user.name);
  CHECK(field(log, "wrote") == "yes");
  CHECK(field(log, "setuid0") != "0");  // root cannot be regained
  struct stat st {};
  REQUIRE(::stat((dir + "/written").c_str(), &st) == 0);
  CHECK(st.st_uid == user.uid);
  CHECK(st.st_gid == user.gid);
}

TEST_CASE("runner: --run-as leaves the plugins in the runner as root and keeps their variables",
          "[run-as]") {
  SKIP_UNLESS_ROOT();
  TestUser user;
  std::string dir = user.owned_dir("compile");
  std::string config = testenv::write_plugin_yaml(user.tmp / "plugin.yaml", {"enabled: false"});
  auto r = run(runner_argv(dir, {fixture("env_setter")}, {"--run-as", user.name},
                           {"sh", "-c", "echo uid=$(id -u); echo var=$FIXTURE_VAR"}, config));
  INFO(r.output);
  auto log = testenv::read_file(dir + "/output.log");
  INFO(log);
  CHECK(r.status == 0);
  CHECK(field(log, "uid") == std::to_string(user.uid));
  CHECK(field(log, "var") == "from-plugin");
  CHECK_THAT(log, Catch::Contains("fixture: pre-compile"));
  CHECK_THAT(log, Catch::Contains("fixture: post-compile exit=0 timed_out=0"));
  // The post-compile hook wrote this from the runner's process, as root.
  struct stat st {};
  REQUIRE(::stat((dir + "/post.marker").c_str(), &st) == 0);
  CHECK(st.st_uid == 0);
}

TEST_CASE(
    "runner: --run-as: the command cannot write a root-owned directory, output.log still works",
    "[run-as]") {
  SKIP_UNLESS_ROOT();
  TestUser user;
  // Root-owned 0755: the user may enter and read, not write. output.log is
  // opened by the runner and handed to the command as stdout and stderr.
  std::string dir = user.tmp / "root-owned";
  REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
  REQUIRE(::chmod(dir.c_str(), 0755) == 0);
  auto r = run(
      runner_argv(dir, {}, {"--run-as", user.name},
                  {"sh", "-c", "touch denied; echo touch=$?; echo to-stdout; echo to-stderr >&2"}));
  INFO(r.output);
  auto log = testenv::read_file(dir + "/output.log");
  INFO(log);
  CHECK(r.status == 0);
  CHECK_FALSE(testenv::exists(dir + "/denied"));
  CHECK(field(log, "touch") != "0");
  CHECK_THAT(log, Catch::Contains("Permission denied"));
  CHECK_THAT(log, Catch::Contains("to-stdout\n"));
  CHECK_THAT(log, Catch::Contains("to-stderr\n"));
}

TEST_CASE("runner: --run-as with an unknown user exits 125 before running anything", "[run-as]") {
  SKIP_UNLESS_ROOT();
  testenv::TempDir tmp;
  std::string dir = tmp / "compile";
  ::mkdir(dir.c_str(), 0755);
  std::string config = testenv::write_plugin_yaml(tmp / "plugin.yaml", {"enabled: false"});
  std::string who;
  SECTION("a name") {
    who = "clsi-test-nouser-" + std::to_string(::getpid());
  }
  SECTION("a uid") {
    uid_t uid = 3999999000;
    while (::getpwuid(uid))
      ++uid;
    who = std::to_string(uid);
  }
  REQUIRE(::getpwnam(who.c_str()) == nullptr);
  std::string marker = tmp / "ran";
  auto r =
      run(runner_argv(dir, {fixture("env_setter")}, {"--run-as", who}, {"touch", marker}, config));
  CHECK(r.status == 125);
  CHECK_THAT(r.output, Catch::Contains("--run-as " + who + ": no such user"));
  CHECK_FALSE(testenv::exists(marker));
  // Not even the plugins' hooks ran.
  CHECK_FALSE(testenv::exists(dir + "/post.marker"));
  CHECK_FALSE(testenv::exists(dir + "/output.log"));
}

TEST_CASE("runner: --run-as and --no-network in a runner without root exit 125 and say why",
          "[run-as]") {
  SKIP_UNLESS_ROOT();
  TestUser user;
  // The unprivileged runner must be able to create output.log.
  std::string dir = user.owned_dir("compile");
  std::string marker = dir + "/ran";
  auto probe = run({"/usr/bin/setpriv", "--reuid", std::to_string(user.uid), "--regid",
                    std::to_string(user.gid), "--clear-groups", "test", "-x", CLSI_RUNNER_PATH});
  if (probe.status != 0) {
    WARN("skipped: the test user cannot execute " CLSI_RUNNER_PATH);
    SUCCEED();
    return;
  }
  std::vector<std::string> option;
  std::string why;
  SECTION("--run-as") {
    option = {"--run-as", "root"};
    why = "--run-as needs clsi-runner to run as root";
  }
  SECTION("--no-network") {
    option = {"--no-network"};
    why = "--no-network needs clsi-runner to run as root (CAP_SYS_ADMIN";
  }
  auto a = runner_argv(dir, {}, option, {"touch", marker});
  a.insert(a.begin(), {"/usr/bin/setpriv", "--reuid", std::to_string(user.uid), "--regid",
                       std::to_string(user.gid), "--clear-groups"});
  auto r = run(a);
  CHECK(r.status == 125);
  CHECK_THAT(r.output, Catch::Contains(why));
  CHECK_FALSE(testenv::exists(marker));
}

TEST_CASE("a credential step that fails in the child exits 125 and names the step", "[run-as]") {
  SKIP_UNLESS_ROOT();
  // In a user namespace the runner is "root" with every capability, so the
  // up-front check passes, but setgroups is denied there: the failure comes
  // from the child, between fork and exec.
  if (run({"/usr/bin/unshare", "--user", "--map-root-user", "true"}).status != 0) {
    WARN("skipped: cannot create a user namespace here");
    SUCCEED();
    return;
  }
  TestUser user;
  std::string dir = user.tmp / "compile";
  ::mkdir(dir.c_str(), 0777);
  ::chmod(dir.c_str(), 0777);
  std::string config = testenv::write_plugin_yaml(user.tmp / "plugin.yaml", {"enabled: false"});
  std::string marker = dir + "/ran";
  auto a =
      runner_argv(dir, {fixture("env_setter")}, {"--run-as", user.name}, {"touch", marker}, config);
  a.insert(a.begin(), {"/usr/bin/unshare", "--user", "--map-root-user"});
  auto r = run(a);
  auto log = testenv::read_file(dir + "/output.log");
  INFO(log);
  CHECK(r.status == 125);
  CHECK_THAT(r.output, Catch::Contains("(setgroups): Operation not permitted"));
  CHECK_THAT(log, Catch::Contains("cannot start the command in its sandbox"));
  CHECK_FALSE(testenv::exists(marker));
  // The compile failed after pre-compile: post-compile still ran, with 125.
  CHECK(testenv::read_file(dir + "/post.marker") == "125 0\n");
}

TEST_CASE("runner: --no-network leaves the command only its own loopback", "[run-as]") {
  SKIP_UNLESS_ROOT();
  testenv::TempDir tmp;
  std::string dir = tmp / "compile";
  ::mkdir(dir.c_str(), 0755);
  HostListener host;
  auto probe = [&](std::vector<std::string> extra) {
    auto r = run(runner_argv(dir, {}, std::move(extra),
                             {kPython, "-c", kNetProbe, std::to_string(host.port())}));
    INFO(r.output);
    CHECK(r.status == 0);
    return testenv::read_file(dir + "/output.log");
  };
  SECTION("without --no-network the host's loopback answers") {
    auto log = probe({});
    INFO(log);
    CHECK(field(log, "host_port") == "connected");
  }
  SECTION("with --no-network only lo exists, is up, and the host is unreachable") {
    auto log = probe({"--no-network"});
    INFO(log);
    CHECK(field(log, "interfaces") == "lo");
    CHECK(field(log, "own_loopback") == "ping");
    CHECK(field(log, "host_port") == "ConnectionRefusedError");
    CHECK_THAT(log, Catch::Contains("no network access (loopback only)"));
  }
}

TEST_CASE("runner: --no-network with --run-as: the namespace is made before privileges go",
          "[run-as]") {
  SKIP_UNLESS_ROOT();
  TestUser user;
  std::string dir = user.owned_dir("compile");
  HostListener host;
  std::string script = std::string(kNetProbe) + "\nimport os\nprint('uid=%d' % os.getuid())\n";
  auto r = run(runner_argv(dir, {}, {"--no-network", "--run-as", user.name},
                           {kPython, "-c", script, std::to_string(host.port())}));
  INFO(r.output);
  auto log = testenv::read_file(dir + "/output.log");
  INFO(log);
  CHECK(r.status == 0);
  CHECK(field(log, "uid") == std::to_string(user.uid));
  CHECK(field(log, "interfaces") == "lo");
  CHECK(field(log, "own_loopback") == "ping");
  CHECK(field(log, "host_port") == "ConnectionRefusedError");
}
