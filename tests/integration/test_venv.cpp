// The python-venv plugin end to end: clsi-runner, real python3, real pip,
// indexes the tests build themselves (file:// and loopback HTTP).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <thread>

#include "venv_world.hpp"

using Catch::Contains;
using testenv::count_occurrences;
using testenv::VenvWorld;

namespace {

const char* const kPipRan = "[python-venv] installing ";

}  // namespace

TEST_CASE("first compile builds, the render imports through QUARTO_PYTHON inside venvs_dir",
          "[venv]") {
  VenvWorld w;
  w.configure();
  auto dir = w.project("# analysis deps\nalpha==1.0\n");
  int status = -1;
  auto log = w.compile(dir, true, "import alpha; print('RENDER', alpha.MESSAGE)", {}, {}, &status);
  INFO(log);
  CHECK(status == 0);
  CHECK_THAT(log, Contains("building environment"));
  CHECK_THAT(log, Contains(kPipRan));
  CHECK_THAT(log, Contains("RENDER alpha 2.1"));
  CHECK_THAT(log, Contains("render python: " + w.venvs + "/envs/"));
  REQUIRE(w.env_dirs().size() == 1);
  auto key = w.env_dirs()[0];
  auto record = testenv::read_file(w.venvs + "/envs/" + key + ".complete");
  CHECK_THAT(record, Contains("alpha==1.0"));
  CHECK_THAT(record, Contains("beta==2.1"));  // the dependency, with its version
}

TEST_CASE("a second project with the same requirements reuses without pip running", "[venv]") {
  VenvWorld w;
  w.configure();
  auto first = w.compile(w.project("alpha==1.0\ngamma\n"));
  REQUIRE_THAT(first, Contains(kPipRan));
  // Same set: other order, case, spacing, comments and separators.
  auto dir = w.project("# same set\nGamma   \n\nALPHA == 1.0  # pinned\n");
  auto second = w.compile(dir, true, "import alpha, gamma; print('RENDER', gamma.MESSAGE)");
  INFO(second);
  CHECK_THAT(second, Contains("reusing environment"));
  CHECK_THAT(second, !Contains(kPipRan));
  CHECK_THAT(second, !Contains("building environment"));
  CHECK_THAT(second, Contains("RENDER gamma here"));
  CHECK(w.env_dirs().size() == 1);
}

TEST_CASE("a different requirements set gets its own environment", "[venv]") {
  VenvWorld w;
  w.configure();
  w.compile(w.project("alpha\n"));
  auto log = w.compile(w.project("gamma\n"), true, "import gamma; print('RENDER', gamma.MESSAGE)");
  CHECK_THAT(log, Contains("building environment"));
  CHECK_THAT(log, Contains("RENDER gamma here"));
  CHECK(w.env_dirs().size() == 2);
}

TEST_CASE("installs from a loopback HTTP index and contacts nothing else", "[venv][http]") {
  VenvWorld w;
  testenv::IndexServer server(w.index);
  w.configure({}, server.url());
  auto log = w.compile(w.project("alpha\n"));
  INFO(log);
  CHECK_THAT(log, Contains("RENDER alpha 2.1"));
  auto requests = server.requests();
  CHECK_FALSE(requests.empty());
  bool saw_alpha = false;
  for (const auto& r : requests)
    saw_alpha |= r.find("/simple/alpha/") != std::string::npos;
  CHECK(saw_alpha);
}

TEST_CASE("a user who may not install gets no venv and nothing new in the store",
          "[venv][gating]") {
  VenvWorld w;
  w.configure();
  auto dir = w.project("alpha\n");
  auto log = w.compile(dir, false);
  INFO(log);
  CHECK_THAT(log, Contains("may not install Python packages"));
  CHECK_THAT(log, Contains("render python: base"));
  CHECK_THAT(log, !Contains(kPipRan));
  CHECK(w.untouched());
}

TEST_CASE("the feature flag off, in the file or the environment, turns everything off",
          "[venv][flag]") {
  VenvWorld w;
  SECTION("enabled: false in plugin.yaml") {
    w.configure({"enabled: false"});
    auto log = w.compile(w.project("alpha\n"));
    CHECK_THAT(log, !Contains("[python-venv]"));
    CHECK_THAT(log, Contains("render python: base"));
  }
  SECTION("OVERLEAF_ENABLE_PROJECT_PYTHON_VENV=false overrides enabled: true") {
    w.configure();
    auto log = w.compile(w.project("alpha\n"), true, "print(1)",
                         {{"OVERLEAF_ENABLE_PROJECT_PYTHON_VENV", "false"}});
    CHECK_THAT(log, !Contains("[python-venv]"));
    CHECK_THAT(log, Contains("render python: base"));
  }
  SECTION("OVERLEAF_ENABLE_PROJECT_PYTHON_VENV=1 overrides enabled: false") {
    w.configure({"enabled: false"});
    auto log = w.compile(w.project("alpha\n"), true, "import alpha; print('RENDER', alpha.MESSAGE)",
                         {{"OVERLEAF_ENABLE_PROJECT_PYTHON_VENV", "1"}});
    CHECK_THAT(log, Contains("RENDER alpha 2.1"));
    return;
  }
  CHECK(w.untouched());
}

TEST_CASE("PYTHON_VENVS_DIR overrides venvs_dir", "[venv][flag]") {
  VenvWorld w;
  w.configure();
  std::string other = w.tmp / "elsewhere";
  // The variable moves the store for the service and the compile hosts alike.
  w.start_service({{"PYTHON_VENVS_DIR", other}});
  auto log = w.compile(w.project("gamma\n"), true, "import gamma; print('RENDER', gamma.MESSAGE)",
                       {{"PYTHON_VENVS_DIR", other}});
  CHECK_THAT(log, Contains("render python: " + other + "/envs/"));
  CHECK(testenv::list_dir(w.venvs + "/envs").empty());
}

TEST_CASE("requirements.vrf is found by default and wins over requirements.txt", "[venv]") {
  VenvWorld w;
  w.configure();
  auto dir = w.project("gamma\n", "requirements.vrf");
  testenv::write_file(dir + "/requirements.txt", "alpha\n");
  auto log = w.compile(dir, true, "import gamma; print('RENDER', gamma.MESSAGE)");
  INFO(log);
  CHECK_THAT(log, Contains("./requirements.vrf"));
  CHECK_THAT(log, Contains("RENDER gamma here"));
  CHECK_THAT(log, !Contains("  alpha 1.0"));
}

TEST_CASE("a failed install falls back with pip's reason, keeps nothing, and recovers", "[venv]") {
  VenvWorld w;
  w.configure();
  auto dir = w.project("alpha\nno-such-package==9.9\n");
  int status = -1;
  auto log = w.compile(dir, true, "print('RENDER ran on base')", {}, {}, &status);
  INFO(log);
  CHECK(status == 0);  // the compile itself did not fail
  CHECK_THAT(log,
             Contains("./requirements.txt:2: no package named 'no-such-package' on the index"));
  CHECK_THAT(log, Contains("failed"));
  CHECK_THAT(log, Contains("the render runs on the base interpreter"));
  CHECK_THAT(log, Contains("render python: base"));
  CHECK_THAT(log, Contains("RENDER ran on base"));
  CHECK(w.env_dirs().empty());
  // Fixing the file fixes the compile.
  testenv::write_file(dir + "/requirements.txt", "alpha\n");
  auto fixed = w.compile(dir);
  CHECK_THAT(fixed, Contains("RENDER alpha 2.1"));
}

TEST_CASE("an install over caps.install_timeout_s is killed and falls back", "[venv][caps]") {
  VenvWorld w;
  testenv::IndexServer slow(w.index, 4000);
  w.configure({"caps:", "  install_timeout_s: 2"}, slow.url());
  auto start = std::chrono::steady_clock::now();
  auto log = w.compile(w.project("alpha\n"), true, "print('RENDER ran')");
  auto took = std::chrono::steady_clock::now() - start;
  INFO(log);
  CHECK_THAT(log, Contains("caps.install_timeout_s (2 s)"));
  CHECK_THAT(log, Contains("RENDER ran"));
  CHECK(took < std::chrono::seconds(30));
  CHECK(w.env_dirs().empty());
  CHECK(testenv::leftovers_mentioning(w.venvs).empty());
}

TEST_CASE("a venv over caps.max_venv_mb is not kept", "[venv][caps]") {
  VenvWorld w;
  w.configure({"caps:", "  max_venv_mb: 1"});
  auto log = w.compile(w.project("bulky\n"), true, "print('RENDER ran')");
  INFO(log);
  CHECK_THAT(log, Contains("caps.max_venv_mb (1 MB)"));
  CHECK_THAT(log, Contains("RENDER ran"));
  CHECK(w.env_dirs().empty());
}

TEST_CASE("concurrent compiles of one new key: one install, every render sees the packages",
          "[venv][concurrency]") {
  VenvWorld w;
  testenv::IndexServer server(w.index, 300);  // slow enough for the compiles to overlap
  w.configure({}, server.url());
  constexpr int kCompiles = 6;
  std::vector<std::string> dirs;
  for (int i = 0; i < kCompiles; ++i)
    dirs.push_back(w.project("alpha\n"));
  std::vector<std::string> logs(kCompiles);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCompiles; ++i) {
    threads.emplace_back([&, i] { logs[i] = w.compile(dirs[i]); });
  }
  for (auto& t : threads)
    t.join();
  int waited_or_reused = 0;
  int waited = 0;
  for (const auto& log : logs) {
    INFO(log);
    CHECK_THAT(log, Contains("RENDER alpha 2.1"));
    bool joined = log.find("another compile is already building") != std::string::npos;
    waited_or_reused += (joined || log.find("reusing") != std::string::npos) ? 1 : 0;
    waited += joined ? 1 : 0;
  }
  CHECK(waited >= 1);  // they really overlapped
  CHECK(count_occurrences(testenv::read_file(w.venvs + "/events.log"), " build ") == 1);
  CHECK(waited_or_reused == kCompiles - 1);
  CHECK(w.env_dirs().size() == 1);
}

namespace {

// Starts clsi-runner for `dir` in the background and waits until pip runs.
std::optional<clsi::Child> start_compile_until_pip_runs(const VenvWorld& w,
                                                        const std::string& dir) {
  clsi::SpawnOptions o;
  auto argv = w.runner_argv(dir, true, "print(1)");
  o.executable = argv[0];
  o.args.assign(argv.begin() + 1, argv.end());
  o.env = {"PATH=/usr/bin:/bin"};
  o.output_fd = 2;
  std::error_code ec;
  auto host = clsi::Child::spawn(o, ec);
  for (int i = 0; host && i < 400; ++i) {
    if (testenv::read_file(dir + "/output.log").find("[python-venv] resolving ") !=
        std::string::npos) {
      return host;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return std::nullopt;
}

void wait_until_no_process_mentions(const std::string& needle, int seconds) {
  for (int i = 0; i < seconds * 20 && !testenv::leftovers_mentioning(needle).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace

TEST_CASE("a host killed with SIGKILL mid-build: the next compile gets a working venv",
          "[venv][crash]") {
  VenvWorld w;
  testenv::IndexServer slow(w.index, 700);
  w.configure({}, slow.url());
  auto dir = w.project("alpha\n");
  auto host = start_compile_until_pip_runs(w, dir);
  REQUIRE(host);
  ::kill(host->pid(), SIGKILL);
  host->wait();

  auto log = w.compile(w.project("alpha\n"));
  INFO(log);
  CHECK_THAT(log, Contains("RENDER alpha 2.1"));
  // The build went on in the background; once it is done nothing is left running.
  wait_until_no_process_mentions(w.venvs, 10);
  CHECK(testenv::leftovers_mentioning(w.venvs).empty());
  CHECK(w.env_dirs().size() == 1);
}

TEST_CASE("a build killed outright leaves a leftover that the next compile removes and rebuilds",
          "[venv][crash]") {
  VenvWorld w;
  testenv::IndexServer slow(w.index, 1500);
  w.configure({}, slow.url());
  auto dir = w.project("alpha\n");
  auto host = start_compile_until_pip_runs(w, dir);
  REQUIRE(host);
  // Kill everything: the host, the build service and pip (a machine crash).
  ::kill(host->pid(), SIGKILL);
  host->wait();
  w.service->kill_now();
  for (int pid : testenv::processes_mentioning(w.venvs))
    ::kill(pid, SIGKILL);
  wait_until_no_process_mentions(w.venvs, 10);
  REQUIRE(testenv::processes_mentioning(w.venvs).empty());
  REQUIRE(w.env_dirs().size() == 1);  // the half-built venv, without a record
  CHECK_FALSE(testenv::exists(w.venvs + "/envs/" + w.env_dirs()[0] + ".complete"));

  w.start_service();  // as systemd's Restart=on-failure would
  auto log = w.compile(w.project("alpha\n"));
  INFO(log);
  CHECK_THAT(log, Contains("removing an unfinished build"));
  CHECK_THAT(log, Contains("RENDER alpha 2.1"));
  CHECK(testenv::exists(w.venvs + "/envs/" + w.env_dirs()[0] + ".complete"));
}

TEST_CASE("a wrapper script as base_python builds once and is reused", "[venv][shim]") {
  VenvWorld w;
  // What pyenv's shims and many images' /usr/local/bin/python3 are.
  std::string shim = w.tmp / "shims/python3";
  testenv::write_file(shim, "#!/bin/sh\nexec /usr/bin/python3 \"$@\"\n");
  ::chmod(shim.c_str(), 0755);
  w.configure({"base_python: " + shim});
  auto first = w.compile(w.project("alpha\n"));
  INFO(first);
  REQUIRE_THAT(first, Contains("RENDER alpha 2.1"));
  auto second = w.compile(w.project("alpha\n"));
  INFO(second);
  CHECK_THAT(second, Contains("reusing environment"));
  CHECK_THAT(second, Contains("RENDER alpha 2.1"));
  CHECK(count_occurrences(testenv::read_file(w.venvs + "/events.log"), " build ") == 1);
}

namespace {

// True when nothing holds a lease (or build lock) on the key's lock file.
bool key_lock_free(const std::string& lock_path) {
  clsi::UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) return true;
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  return ::fcntl(fd.get(), F_OFD_SETLK, &fl) == 0;
}

}  // namespace

TEST_CASE("a host killed with SIGKILL during the render: the whole render goes, leased to the end",
          "[venv][crash][render]") {
  VenvWorld w;
  w.configure();
  auto dir = w.project("alpha\n");
  // The render starts a process in a session of its own (as jupyter_client
  // starts a kernel) that keeps writing into the compile directory. Only its
  // command line holds the marker whole.
  const std::string marker = "clsi-orphan-" + std::to_string(::getpid());
  const std::string code =
      "import alpha, subprocess, sys, time\n"
      "loop = 'import time\\nwhile True:\\n  open(\"output.log\", \"a\").write(\"ORPHAN\\\\n\")\\n"
      "  time.sleep(0.05)\\n'\n"
      "subprocess.Popen([sys.executable, '-c', loop, 'clsi-orph' + '" +
      marker.substr(9) +
      "'], start_new_session=True)\n"
      "print('RENDER', alpha.MESSAGE, flush=True)\n"
      "time.sleep(120)\n";
  clsi::SpawnOptions o;
  auto argv = w.runner_argv(dir, true, code);
  o.executable = argv[0];
  o.args.assign(argv.begin() + 1, argv.end());
  o.env = {"PATH=/usr/bin:/bin"};
  o.output_fd = 2;
  std::error_code ec;
  auto host = clsi::Child::spawn(o, ec);
  REQUIRE(host);
  for (int i = 0;
       i < 1200 && testenv::read_file(dir + "/output.log").find("ORPHAN") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE_THAT(testenv::read_file(dir + "/output.log"), Contains("RENDER alpha 2.1"));
  REQUIRE(testenv::processes_mentioning(marker).size() == 1);
  REQUIRE(w.env_dirs().size() == 1);
  const std::string lock = w.venvs + "/locks/" + w.env_dirs()[0] + ".lock";
  REQUIRE_FALSE(key_lock_free(lock));

  ::kill(host->pid(), SIGKILL);
  host->wait();
  // As long as any process of the render runs, its lease holds; the render
  // is gone within a bound.
  bool lease_broken_while_running = false;
  for (int i = 0; i < 200 && !testenv::processes_mentioning(marker).empty(); ++i) {
    bool free = key_lock_free(lock);
    if (free && !testenv::processes_mentioning(marker).empty()) lease_broken_while_running = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK_FALSE(lease_broken_while_running);
  REQUIRE(testenv::processes_mentioning(marker).empty());
  CHECK(key_lock_free(lock));

  // Nothing of the killed render writes into the next compile's output.log.
  REQUIRE(::unlink((dir + "/output.log").c_str()) == 0);
  auto next = w.compile(dir);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  INFO(next);
  CHECK_THAT(next, Contains("RENDER alpha 2.1"));
  CHECK_THAT(testenv::read_file(dir + "/output.log"), !Contains("ORPHAN"));
}
