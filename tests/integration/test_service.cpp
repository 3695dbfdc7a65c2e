// The build service as it runs in production: its own user owns the store,
// the compile host only reads it (through a read-only mount, too), renders
// run as yet another user. Real users, real processes, real mounts.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "service_client.hpp"
#include "test_users.hpp"
#include "venv_world.hpp"

using Catch::Contains;
using testenv::VenvWorld;

namespace {

const std::string kVenvsTool = std::string(CLSI_BUILD_DIR) + "/bin/clsi-venvs";

#define REQUIRE_ROOT()                                           \
  do {                                                           \
    if (::geteuid() != 0) {                                      \
      WARN("skipped: real users, setpriv and mounts need root"); \
      return;                                                    \
    }                                                            \
  } while (0)

// A store owned by the service's own user; renders run as another user; the
// compile host (this test, root) may ask for builds.
struct OwnedWorld {
  VenvWorld w;
  testenv::SystemUser svc{"svc", w.tmp / "home-svc"};
  testenv::SystemUser render{"rnd", w.tmp / "home-rnd"};

  explicit OwnedWorld(const std::vector<std::string>& extra = {}, const std::string& index = "") {
    ::chmod(w.tmp.path().c_str(), 0755);  // others may traverse to the store and projects
    ::chmod(w.index.c_str(), 0755);
    REQUIRE(testenv::run({"mkdir", "-p", w.venvs, w.tmp / "run"}).status == 0);
    svc.own(w.venvs);
    svc.own(w.tmp / "run");
    w.socket = w.tmp / "run/sock";
    // The compile host (root here) may ask; leases are the service group's.
    w.service_lines = {"allowed_uids: [0]", "lease_gid: " + std::to_string(svc.gid())};
    w.service_prefix = svc.as();
    w.configure(extra, index);
    ::chmod(w.config.c_str(), 0644);
  }

  std::string compile(const std::string& dir, const std::string& code,
                      const std::vector<std::string>& wrap = {}) const {
    auto argv = w.runner_argv(dir, true, code, {"--run-as", render.name()});
    argv.insert(argv.begin(), wrap.begin(), wrap.end());
    const std::size_t before = testenv::file_size(dir + "/output.log");  // the runner appends
    auto r = testenv::run(argv);
    return testenv::read_file_from(dir + "/output.log", before) + r.output;
  }

  // Runs the compile host in its own mount namespace in which the whole
  // store is a read-only bind mount at its usual path.
  [[nodiscard]] std::vector<std::string> read_only_store() const {
    return {"/usr/bin/unshare",
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            "mount --bind -o ro \"$0\" \"$0\" && exec \"$@\"",
            w.venvs};
  }
};

// What a render's own code tries against the shared store. Each line says
// whether the kernel let it.
std::string attack_code(const VenvWorld& w) {
  return R"PY(
import glob, json, os, socket
store = ")PY" +
         w.venvs + R"PY("
def attempt(name, fn):
    try:
        fn()
        print("ATTACK", name, "SUCCEEDED")
    except OSError as e:
        print("ATTACK", name, "denied:", e.strerror)
def write(path, text, mode="w"):
    with open(path, mode) as f:
        f.write(text)
import alpha
site = os.path.dirname(os.path.dirname(alpha.__file__))
attempt("package", lambda: write(alpha.__file__, "\nMESSAGE = 'poisoned'\n", "a"))
attempt("pth", lambda: write(os.path.join(site, "zz-evil.pth"), "import os\n"))
attempt("keys-new", lambda: write(store + "/keys/0123456789abcdef", "x"))
for f in glob.glob(store + "/keys/*"):
    attempt("keys-rewrite", lambda f=f: write(f, "f" * 64 + "\nforged\n"))
fake = "f" * 64
attempt("env-plant", lambda: os.mkdir(store + "/envs/" + fake))
attempt("record-plant", lambda: write(store + "/envs/" + fake + ".complete", "key: " + fake))
for f in glob.glob(store + "/envs/*.complete"):
    attempt("record-rewrite", lambda f=f: write(f, "key: forged\n"))
attempt("pip-cache", lambda: os.listdir(store + "/cache/pip"))
for f in glob.glob(store + "/probes/*"):
    attempt("probe-rewrite", lambda f=f: write(f, "fingerprint=x\n"))
attempt("failure-plant", lambda: write(store + "/failures/" + fake, "9999999999\nno\n"))
attempt("lock-plant", lambda: write(store + "/locks/" + fake + ".lock", ""))
attempt("events", lambda: write(store + "/events.log", "1 hit x 0\n", "a"))
for f in glob.glob(store + "/locks/*.lock") or [store + "/locks/none.lock"]:
    attempt("lock-lease", lambda f=f: open(f).close())  # a lease would pin the venv
s = socket.socket(socket.AF_UNIX)
s.connect(")PY" +
         w.socket + R"PY(")
try:
    s.sendall(b'{"op": "build", "requirements": ["gamma"]}\n')
except OSError:
    pass  # refused peers are answered and dropped at once
print("SOCKET", s.recv(4096).decode().strip())
print("RENDER", alpha.MESSAGE)
)PY";
}

}  // namespace

TEST_CASE("service: a render cannot change what another compile uses", "[service][attack]") {
  REQUIRE_ROOT();
  OwnedWorld o;
  auto a = o.compile(o.w.project("alpha\n"), attack_code(o.w));
  INFO(a);
  CHECK_THAT(a, Contains("RENDER alpha 2.1"));
  CHECK_THAT(a, !Contains("SUCCEEDED"));
  for (const char* what :
       {"package", "pth", "keys-new", "keys-rewrite", "env-plant", "record-plant", "record-rewrite",
        "pip-cache", "probe-rewrite", "failure-plant", "lock-plant", "events", "lock-lease"}) {
    CHECK_THAT(a, Contains(std::string("ATTACK ") + what + " denied"));
  }
  CHECK_THAT(a, Contains("may not use this build service"));

  // The victim: another project with the same requirements.
  auto b = o.compile(o.w.project("alpha\n"), "import alpha; print('RENDER', alpha.MESSAGE)");
  INFO(b);
  CHECK_THAT(b, Contains("reusing environment"));
  CHECK_THAT(b, Contains("RENDER alpha 2.1"));
  CHECK_THAT(b, !Contains("poisoned"));
  CHECK(o.w.env_dirs().size() == 1);  // the render's request for gamma built nothing
}

TEST_CASE("service: venvs, records and caches belong to the service's user alone",
          "[service][owner]") {
  REQUIRE_ROOT();
  OwnedWorld o;
  o.compile(o.w.project("alpha\n"), "print(1)");
  REQUIRE(o.w.env_dirs().size() == 1);
  std::string key = o.w.env_dirs()[0];
  for (const auto& p : {o.w.venvs + "/envs/" + key, o.w.venvs + "/envs/" + key + ".complete",
                        o.w.venvs + "/envs/" + key + "/bin", o.w.venvs + "/locks/" + key + ".lock",
                        o.w.venvs + "/keys", o.w.venvs + "/probes", o.w.venvs + "/cache/pip"}) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    INFO(p);
    CHECK(st.st_uid == o.svc.uid());
    CHECK((st.st_mode & (S_IWGRP | S_IWOTH)) == 0);
  }
  struct stat st {};
  REQUIRE(::stat((o.w.venvs + "/cache/pip").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);

  // warm, run as root, builds through the service: nothing root-owned appears.
  std::string file = o.w.tmp / "warm-requirements.txt";
  testenv::write_file(file, "gamma\n");
  auto warm = testenv::run({kVenvsTool, "warm", "--config", o.w.config, file});
  INFO(warm.output);
  CHECK(warm.status == 0);
  CHECK(o.w.env_dirs().size() == 2);
  auto owned_by_root = testenv::run({"find", o.w.venvs, "-user", "root"});
  CHECK(owned_by_root.output.empty());

  // gc and remove change the store: only its owner may run them.
  for (const auto& args : std::vector<std::vector<std::string>>{{"gc", "--max-total-mb", "0"},
                                                                {"remove", key.substr(0, 12)}}) {
    std::vector<std::string> argv = {kVenvsTool, args[0], "--config", o.w.config};
    argv.insert(argv.end(), args.begin() + 1, args.end());
    auto r = testenv::run(argv);
    INFO(r.output);
    CHECK(r.status != 0);
    CHECK_THAT(r.output, Contains("store's owner"));
  }
  CHECK(o.w.env_dirs().size() == 2);
}

TEST_CASE("service: refuses a store that others own or can write, saying how to fix it",
          "[service][owner]") {
  REQUIRE_ROOT();
  OwnedWorld o;
  o.w.service.reset();
  SECTION("a directory owned by someone else") {
    REQUIRE(testenv::run({"chown", "root:root", o.w.venvs + "/keys"}).status == 0);
    CHECK_THROWS_WITH(o.w.start_service(), Contains(o.w.venvs + "/keys") && Contains("chown"));
  }
  SECTION("the store's root writable by its group") {
    ::chmod(o.w.venvs.c_str(), 0775);
    CHECK_THROWS_WITH(o.w.start_service(), Contains(o.w.venvs) && Contains("chmod go-w"));
  }
  SECTION("a record planted by another user") {
    testenv::write_file(o.w.venvs + "/envs/" + std::string(64, 'a') + ".complete", "key: x\n");
    CHECK_THROWS_WITH(o.w.start_service(), Contains(".complete"));
  }
}

TEST_CASE("service: a compile's report reaches the service as its render starts, not after it",
          "[service][used]") {
  testenv::VenvWorld w;
  w.configure();
  REQUIRE_THAT(w.compile(w.project("alpha\n")), Contains("RENDER alpha 2.1"));
  REQUIRE(w.env_dirs().size() == 1);
  const std::string key = w.env_dirs()[0];
  // The render itself waits (up to 10 s) for the service's record of this
  // hit: the compile told the service before the render, and does not wait
  // for its answer until post-compile.
  std::string code = R"(import time
for _ in range(200):
    if ' hit KEY' in open('EVENTS').read():
        print('REPORTED BEFORE THE RENDER ENDED'); break
    time.sleep(0.05)
else:
    print('NOT REPORTED')
)";
  code.replace(code.find("KEY"), 3, key);
  code.replace(code.find("EVENTS"), 6, w.venvs + "/events.log");
  auto hit = w.compile(w.project("alpha\n"), true, code);
  INFO(hit);
  CHECK_THAT(hit, Contains("reusing environment"));
  CHECK_THAT(hit, Contains("REPORTED BEFORE THE RENDER ENDED"));
  CHECK_THAT(hit, !Contains("report_failed"));
  // Counted once.
  const auto events = testenv::read_file(w.venvs + "/events.log");
  std::size_t hits = 0;
  for (auto at = events.find(" hit " + key); at != std::string::npos;
       at = events.find(" hit " + key, at + 1))
    ++hits;
  CHECK(hits == 1);
}

TEST_CASE("service: hits through a read-only mount, gc never removes a leased venv",
          "[service][readonly]") {
  REQUIRE_ROOT();
  OwnedWorld o;
  const std::string code = "import alpha; print('RENDER', alpha.MESSAGE)";
  auto first = o.compile(o.w.project("alpha\n"), code);
  REQUIRE_THAT(first, Contains("RENDER alpha 2.1"));
  REQUIRE(o.w.env_dirs().size() == 1);

  const std::string record = o.w.venvs + "/envs/" + o.w.env_dirs()[0] + ".complete";
  struct timespec old_use = {1000000000, 0};
  struct timespec times[2] = {old_use, old_use};
  REQUIRE(::utimensat(AT_FDCWD, record.c_str(), times, 0) == 0);
  auto hit = o.compile(o.w.project("alpha\n"), code, o.read_only_store());
  INFO(hit);
  CHECK_THAT(hit, Contains("reusing environment"));
  CHECK_THAT(hit, Contains("RENDER alpha 2.1"));
  // Its last use reached the service, which stamped the record.
  struct stat st {};
  REQUIRE(::stat(record.c_str(), &st) == 0);
  CHECK(st.st_mtim.tv_sec > old_use.tv_sec);

  // A render holds its lease through the read-only mount while gc runs.
  auto dir = o.w.project("alpha\n");
  auto argv = o.w.runner_argv(dir, true,
                              "import alpha, time; print('RENDER', alpha.MESSAGE, flush=True); "
                              "time.sleep(4)",
                              {"--run-as", o.render.name()});
  auto wrap = o.read_only_store();
  argv.insert(argv.begin(), wrap.begin(), wrap.end());
  clsi::SpawnOptions so;
  so.executable = argv[0];
  so.args.assign(argv.begin() + 1, argv.end());
  so.env = {"PATH=/usr/bin:/bin:/usr/sbin:/sbin"};
  so.output_fd = 2;
  std::error_code ec;
  auto host = clsi::Child::spawn(so, ec);
  REQUIRE(host);
  for (int i = 0;
       i < 200 && testenv::read_file(dir + "/output.log").find("RENDER alpha") == std::string::npos;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE_THAT(testenv::read_file(dir + "/output.log"), Contains("RENDER alpha"));
  auto gc = o.svc.as();
  gc.insert(gc.end(), {kVenvsTool, "gc", "--config", o.w.config, "--max-total-mb", "0"});
  auto during = testenv::run(gc);
  INFO(during.output);
  CHECK_THAT(during.output, Contains("in use"));
  CHECK(o.w.env_dirs().size() == 1);
  host->wait();
  auto after = testenv::run(gc);
  INFO(after.output);
  CHECK(o.w.env_dirs().empty());
}

TEST_CASE("service: unavailable, a hit still works and a miss says it is a service problem",
          "[service][down]") {
  REQUIRE_ROOT();
  OwnedWorld o;
  const std::string code = "import alpha; print('RENDER', alpha.MESSAGE)";
  REQUIRE_THAT(o.compile(o.w.project("alpha\n"), code), Contains("RENDER alpha 2.1"));
  o.w.service.reset();  // stopped
  auto hit = o.compile(o.w.project("alpha\n"), code, o.read_only_store());
  INFO(hit);
  CHECK_THAT(hit, Contains("reusing environment"));
  CHECK_THAT(hit, Contains("RENDER alpha 2.1"));
  auto miss = o.compile(o.w.project("gamma\n"), "print('RENDER done')", o.read_only_store());
  INFO(miss);
  CHECK_THAT(miss, Contains("the build service is unavailable"));
  CHECK_THAT(miss, Contains("not of ./requirements.txt"));
  CHECK_THAT(miss, Contains("RENDER done"));
}

TEST_CASE("service: never more than max_parallel_builds at once, the queue is shown",
          "[service][concurrency]") {
  VenvWorld w;
  testenv::IndexServer slow(w.index, 150);
  w.service_lines = {"max_parallel_builds: 2"};
  w.configure({}, slow.url());
  // Ten distinct keys: the same package under different specifiers.
  const std::vector<std::string> reqs = {"gamma",      "gamma>=0.1", "gamma>=0.2", "gamma<1",
                                         "gamma<2",    "gamma<3",    "gamma==0.3", "gamma>0.1",
                                         "gamma<=0.3", "gamma!=0.1"};
  std::vector<std::string> dirs;
  for (const auto& r : reqs)
    dirs.push_back(w.project(r + "\n"));
  std::atomic<bool> done{false};
  std::atomic<int> most{0};
  std::thread watcher([&] {
    auto config = clsi::venv::load_config(w.config.c_str(), [](const char*) { return nullptr; });
    while (!done) {
      if (auto s = clsi::venv::service_status(*config)) most = std::max(most.load(), s->running);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::vector<std::string> logs(reqs.size());
  std::vector<std::thread> compiles;
  for (std::size_t i = 0; i < reqs.size(); ++i)
    compiles.emplace_back([&, i] {
      logs[i] = w.compile(dirs[i], true, "import gamma; print('RENDER', gamma.MESSAGE)");
    });
  for (auto& t : compiles)
    t.join();
  done = true;
  watcher.join();
  int queued = 0;
  for (const auto& log : logs) {
    INFO(log);
    CHECK_THAT(log, Contains("RENDER gamma here"));
    queued += log.find("ahead of this one") != std::string::npos ? 1 : 0;
  }
  auto config = clsi::venv::load_config(w.config.c_str(), [](const char*) { return nullptr; });
  auto status = clsi::venv::service_status(*config);
  REQUIRE(status);
  CHECK(status->max_running_seen == 2);  // the service's own count: reached, never passed
  CHECK(most <= 2);
  CHECK(queued >= 1);
  CHECK(w.env_dirs().size() == reqs.size());
}

TEST_CASE("service: SIGTERM stops a running build, removes it and exits within seconds",
          "[service][stop]") {
  VenvWorld w;
  testenv::IndexServer slow(w.index, 1500);
  w.configure({}, slow.url());
  auto dir = w.project("alpha\n");
  std::string log;
  std::thread compile([&] { log = w.compile(dir); });
  // pip is resolving: its first request reached the (slow) index.
  REQUIRE(testenv::eventually([&] { return !slow.requests().empty(); }, std::chrono::seconds(10)));
  auto started = std::chrono::steady_clock::now();
  int status = w.service->stop(30);
  auto took = std::chrono::steady_clock::now() - started;
  compile.join();
  INFO(log);
  INFO(testenv::read_file(w.tmp / "service.log"));
  CHECK(status == 0);
  CHECK(took < std::chrono::seconds(10));                   // the design's bound is a few seconds
  CHECK(testenv::processes_mentioning(w.venvs).empty());    // pip started ahead included
  CHECK(w.env_dirs().empty());                              // nothing half-built is left
  CHECK(testenv::list_dir(w.venvs + "/failures").empty());  // not the requirements' fault
  CHECK_THAT(log, Contains("not of ./requirements.txt"));
  CHECK_THAT(log, Contains("render python: base"));
}

TEST_CASE("service: SIGTERM to clsi-runner ends a compile waiting for a build at once",
          "[service][stop]") {
  VenvWorld w;
  testenv::IndexServer slow(w.index, 1500);
  w.configure({}, slow.url());
  auto dir = w.project("alpha\n");
  clsi::SpawnOptions so;
  auto argv = w.runner_argv(dir, true, "print('RENDER ran')");
  so.executable = argv[0];
  so.args.assign(argv.begin() + 1, argv.end());
  so.env = {"PATH=/usr/bin:/bin"};
  so.output_fd = 2;
  std::error_code ec;
  auto host = clsi::Child::spawn(so, ec);
  REQUIRE(host);
  for (int i = 0; i < 400; ++i) {
    if (testenv::read_file(dir + "/output.log").find("[python-venv] resolving ") !=
        std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  REQUIRE_THAT(testenv::read_file(dir + "/output.log"), Contains("[python-venv] resolving "));
  auto sent = std::chrono::steady_clock::now();
  ::kill(host->pid(), SIGTERM);
  int status = clsi::Child::shell_status(host->wait());
  auto took = std::chrono::steady_clock::now() - sent;
  auto log = testenv::read_file(dir + "/output.log");
  INFO(log);
  CHECK(status == 128 + SIGTERM);
  CHECK(took < std::chrono::seconds(3));  // the design says within 1 s; generous for CI
  CHECK_THAT(log, Contains("stopped by Terminated while plugin python-venv was preparing it"));
  // The plugin saw the cancellation (ABI 1.1) and returned: nothing abandoned,
  // its post-compile ran.
  CHECK_THAT(log, !Contains("abandoned"));
  CHECK_THAT(log, Contains("the compile was cancelled while the environment"));
  CHECK_THAT(log, !Contains("RENDER ran"));
  // The build went on in the service; the next compile uses it.
  auto next = w.compile(w.project("alpha\n"));
  INFO(next);
  CHECK_THAT(next, Contains("RENDER alpha 2.1"));
  CHECK(w.env_dirs().size() == 1);
}
