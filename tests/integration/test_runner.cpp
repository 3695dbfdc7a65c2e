// clsi-runner as a whole program: status, output.log, timeouts, signals,
// plugins that cannot be loaded.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "test_env.hpp"

using Catch::Contains;
using testenv::run;

namespace {

std::string fixture(const std::string& name) {
  return std::string(CLSI_FIXTURE_DIR) + "/fixture_" + name + ".so";
}

struct RunnerSetup {
  testenv::TempDir tmp;
  std::string dir = tmp / "compile";
  std::string config;
  RunnerSetup() {
    ::mkdir(dir.c_str(), 0755);
    config = testenv::write_plugin_yaml(tmp / "plugin.yaml",
                                        {"enabled: false", "venvs_dir: " + tmp / "venvs"});
  }
  std::vector<std::string> argv(std::vector<std::string> plugins, std::vector<std::string> extra,
                                std::vector<std::string> command) const {
    std::vector<std::string> a = {CLSI_RUNNER_PATH};
    for (auto& p : plugins)
      a.insert(a.end(), {"--plugin", p});
    a.insert(a.end(), {"--plugin-config", config, "--compile-dir", dir});
    a.insert(a.end(), extra.begin(), extra.end());
    a.emplace_back("--");
    a.insert(a.end(), command.begin(), command.end());
    return a;
  }
  std::string log() const { return testenv::read_file(dir + "/output.log"); }
};

// Running or sleeping; a zombie waiting for a reaper is dead.
bool pid_alive(pid_t pid) {
  auto stat = testenv::read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

}  // namespace

TEST_CASE("runner passes the command's status through and logs its output", "[runner]") {
  RunnerSetup s;
  auto r = run(s.argv({CLSI_PLUGIN_PATH}, {}, {"sh", "-c", "echo hello; exit 3"}));
  CHECK(r.status == 3);
  CHECK_THAT(s.log(), Catch::Contains("hello"));
}

TEST_CASE("runner interleaves stdout and stderr in order with plugin lines around them",
          "[runner]") {
  RunnerSetup s;
  auto r = run(s.argv({fixture("env_setter")}, {},
                      {"sh", "-c", "echo one; echo two >&2; echo three; echo $FIXTURE_VAR"}));
  CHECK(r.status == 0);
  auto log = s.log();
  auto pre = log.find("fixture: pre-compile");
  auto one = log.find("one\n");
  auto two = log.find("two\n");
  auto three = log.find("three\n");
  auto var = log.find("from-plugin\n");
  auto post = log.find("fixture: post-compile exit=0 timed_out=0");
  REQUIRE(pre != std::string::npos);
  REQUIRE(post != std::string::npos);
  CHECK(pre < one);
  CHECK(one < two);
  CHECK(two < three);
  CHECK(three < var);
  CHECK(var < post);
}

TEST_CASE("runner kills the whole process group on timeout and exits 124", "[runner]") {
  RunnerSetup s;
  std::string pidfile = s.tmp / "grandchild.pid";
  auto start = std::chrono::steady_clock::now();
  // The grandchild ignores TERM: the runner must escalate to KILL.
  auto r = run(s.argv(
      {fixture("env_setter")}, {"--timeout", "1"},
      {"sh", "-c",
       "sh -c 'trap \"\" TERM; echo $$ > " + pidfile + "; while :; do sleep 1; done' & wait"}));
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(r.status == 124);
  CHECK(took < std::chrono::seconds(20));
  auto pid = static_cast<pid_t>(std::atoi(testenv::read_file(pidfile).c_str()));
  REQUIRE(pid > 0);
  CHECK_FALSE(pid_alive(pid));
  CHECK_THAT(s.log(), Catch::Contains("timed out"));
  CHECK_THAT(s.log(), Catch::Contains("timed_out=1"));
  CHECK(testenv::read_file(s.dir + "/post.marker") == "124 1\n");
}

TEST_CASE("SIGTERM to the runner ends the compile and still runs post-compile", "[runner]") {
  RunnerSetup s;
  std::string pidfile = s.tmp / "child.pid";
  clsi::SpawnOptions o;
  o.executable = CLSI_RUNNER_PATH;
  auto a = s.argv({fixture("env_setter")}, {},
                  {"sh", "-c", "echo $$ > " + pidfile + "; sleep 60 & wait"});
  o.args.assign(a.begin() + 1, a.end());
  o.env = {"PATH=/usr/bin:/bin"};
  o.output_fd = 2;
  std::error_code ec;
  auto child = clsi::Child::spawn(o, ec);
  REQUIRE(child);
  for (int i = 0; i < 200 && !testenv::exists(pidfile); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  REQUIRE(testenv::exists(pidfile));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ::kill(child->pid(), SIGTERM);
  int status = clsi::Child::shell_status(child->wait());
  CHECK(status == 128 + SIGTERM);
  auto pid = static_cast<pid_t>(std::atoi(testenv::read_file(pidfile).c_str()));
  CHECK_FALSE(pid_alive(pid));
  CHECK(testenv::read_file(s.dir + "/post.marker") == "143 0\n");
}

TEST_CASE("runner refuses a missing plugin before running anything", "[runner]") {
  RunnerSetup s;
  std::string marker = s.tmp / "ran";
  auto r = run(s.argv({s.tmp / "missing.so"}, {}, {"touch", marker}));
  CHECK(r.status != 0);
  CHECK_THAT(r.output, Catch::Contains("missing.so"));
  CHECK_FALSE(testenv::exists(marker));
}

TEST_CASE("runner refuses a shared object that is not a plugin", "[runner]") {
  RunnerSetup s;
  std::string marker = s.tmp / "ran";
  auto r = run(s.argv({fixture("no_entry")}, {}, {"touch", marker}));
  CHECK(r.status != 0);
  CHECK_THAT(r.output, Catch::Contains("not a clsi plugin"));
  CHECK_FALSE(testenv::exists(marker));
}

TEST_CASE("runner refuses a plugin whose configuration is invalid", "[runner]") {
  RunnerSetup s;
  testenv::write_plugin_yaml(s.config, {"enabled: maybe"});
  std::string marker = s.tmp / "ran";
  auto r = run(s.argv({CLSI_PLUGIN_PATH}, {}, {"touch", marker}));
  CHECK(r.status != 0);
  CHECK_THAT(r.output, Catch::Contains("python_venv.enabled"));
  CHECK_THAT(r.output, Catch::Contains(s.config));
  CHECK_FALSE(testenv::exists(marker));
}

TEST_CASE("a pre-compile error fails the compile without running it", "[runner]") {
  RunnerSetup s;
  std::string marker = s.tmp / "ran";
  auto r =
      run(s.argv({fixture("env_setter")}, {}, {"touch", marker}), {{"FIXTURE_MODE", "pre-error"}});
  CHECK(r.status == 125);
  CHECK_FALSE(testenv::exists(marker));
  CHECK_THAT(s.log(), Catch::Contains("did not run"));
}

TEST_CASE("a post-compile error never changes the compile's status", "[runner]") {
  RunnerSetup s;
  auto r = run(s.argv({fixture("env_setter")}, {}, {"sh", "-c", "exit 7"}),
               {{"FIXTURE_MODE", "post-error"}});
  CHECK(r.status == 7);
  CHECK_THAT(r.output, Catch::Contains("post-compile hook failed"));
}

TEST_CASE("a command that does not exist exits 127 and post-compile still runs", "[runner]") {
  RunnerSetup s;
  auto r = run(s.argv({fixture("env_setter")}, {}, {"/nonexistent/command"}));
  CHECK(r.status == 127);
  CHECK(testenv::read_file(s.dir + "/post.marker") == "127 0\n");
}

TEST_CASE("runner: each plugin gets its own --plugin-config, an optional one may be missing",
          "[runner][abi11]") {
  RunnerSetup s;
  testenv::write_file(s.tmp / "env.conf", "env\n");
  std::vector<std::string> a = {
      CLSI_RUNNER_PATH,
      "--plugin",
      fixture("env_setter"),
      "--plugin-config",
      s.config,
      "--plugin",
      fixture("abi11"),
      "--plugin-config",
      s.tmp / "env.conf",
      "--optional-plugin",
      s.tmp / "absent.so",
      "--plugin-config",
      s.config,
      "--permission",
      "custom.x",
      "--compile-dir",
      s.dir,
      "--",
      "sh",
      "-c",
      "echo \"cmd PATHLIKE=$PATHLIKE SETME=$SETME FIXTURE_VAR=$FIXTURE_VAR\""};
  auto r = testenv::run(a, {{"PATHLIKE", "/runner/bin"}});
  INFO(r.output);
  INFO(s.log());
  CHECK(r.status == 0);
  CHECK_THAT(r.output, Contains("optional plugin skipped"));
  CHECK_THAT(s.log(), Contains("abi11: python.install=no custom.x=yes"));
  CHECK_THAT(s.log(), Contains("environment: PATHLIKE prepended to by abi11"));
  CHECK_THAT(s.log(),
             Contains("cmd PATHLIKE=/from/abi11:/runner/bin SETME=abi11 FIXTURE_VAR=from-plugin"));
  // Several --plugin-config: a plugin without its own is an error.
  auto bad = testenv::run({CLSI_RUNNER_PATH, "--plugin", fixture("env_setter"), "--plugin",
                           fixture("abi11"), "--plugin-config", s.tmp / "env.conf", "--plugin",
                           fixture("abi11"), "--plugin-config", s.config, "--compile-dir", s.dir,
                           "--", "true"});
  CHECK(bad.status == 125);
  CHECK_THAT(bad.output, Contains("has no --plugin-config of its own"));
}

TEST_CASE("runner: SIGTERM while a 1.1 plugin waits: it sees the cancellation, post-compile runs",
          "[runner][abi11]") {
  RunnerSetup s;
  testenv::write_file(s.tmp / "wait.conf", "wait\n");
  clsi::SpawnOptions o;
  o.executable = CLSI_RUNNER_PATH;
  o.args = {"--plugin",
            fixture("abi11"),
            "--plugin-config",
            s.tmp / "wait.conf",
            "--compile-dir",
            s.dir,
            "--",
            "true"};
  o.env = {"PATH=/usr/bin:/bin"};
  o.output_fd = 2;
  std::error_code ec;
  auto child = clsi::Child::spawn(o, ec);
  REQUIRE(child);
  for (int i = 0; i < 200 && s.log().find("abi11: waiting") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  REQUIRE_THAT(s.log(), Contains("abi11: waiting"));
  auto sent = std::chrono::steady_clock::now();
  ::kill(child->pid(), SIGTERM);
  int status = clsi::Child::shell_status(child->wait());
  auto took = std::chrono::steady_clock::now() - sent;
  INFO(s.log());
  CHECK(status == 128 + SIGTERM);
  CHECK(took < std::chrono::seconds(5));  // a bound, not a benchmark: the hook waits 20 s
  CHECK_THAT(s.log(), Contains("abi11: saw the cancellation"));
  CHECK_THAT(s.log(), Contains("while plugin abi11 was preparing it; the command did not run"));
  CHECK_THAT(s.log(), !Contains("abandoned"));
  CHECK_THAT(s.log(), Contains("abi11: post exit=143"));
}
