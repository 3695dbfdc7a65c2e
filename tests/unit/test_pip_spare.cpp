// pip started ahead of a build (plugin/src/pip_spare.hpp), with the real
// interpreter and pip, on a package index of the test's own.
#include <signal.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../integration/venv_world.hpp"
#include "pip_resolve_shim.hpp"
#include "pip_spare.hpp"
#include "probe.hpp"
#include "store.hpp"
#include "test_env.hpp"

using Catch::Contains;
using namespace std::chrono_literals;

namespace {

struct SpareWorld {
  testenv::TempDir tmp;
  clsi::venv::Store store{tmp / "store"};
  std::string index = tmp / "index";
  clsi::venv::InterpreterFacts python;
  std::mutex mu;
  std::vector<std::string> oplog;

  SpareWorld() {
    REQUIRE(store.ensure_layout().ok());
    testenv::make_index(index, R"([{"name": "gamma", "version": "0.3",
        "files": {"gamma/__init__.py": "MESSAGE = 'gamma'\n"}}])");
    testenv::write_file(tmp / "requirements.txt", "gamma\n");
    clsi::venv::InterpreterProbe probe(store.probes_dir(), store.tmp_dir(),
                                       clsi::venv::default_process_runner());
    auto facts = probe.facts(testenv::base_python());
    REQUIRE(facts.ok());
    python = *facts;
  }

  clsi::venv::PipSpares spares(std::chrono::milliseconds max_idle = 10min) {
    return {store.tmp_dir(), store.dists_dir(),
            [this](std::string_view l) {
              std::lock_guard lock(mu);
              oplog.emplace_back(l);
            },
            max_idle};
  }

  void prepare(clsi::venv::PipSpares& s) const {
    s.prepare([p = python] { return clsi::venv::Expected<clsi::venv::InterpreterFacts>(p); });
  }

  // pip's own arguments for a resolve of requirements.txt, as the installer
  // gives them.
  [[nodiscard]] std::vector<std::string> resolve_args() const {
    return {"install",
            "--isolated",
            "--no-input",
            "--disable-pip-version-check",
            "--no-color",
            "--index-url",
            "file://" + index + "/simple/",
            "--only-binary=:all:",
            "--dry-run",
            "--report",
            tmp / "report.json",
            "-r",
            tmp / "requirements.txt"};
  }

  [[nodiscard]] std::vector<int> spare_pids() const {
    return testenv::processes_mentioning(store.tmp_dir() + "/pip-spare-");
  }
  [[nodiscard]] std::size_t spare_dirs() const {
    std::size_t n = 0;
    for (const auto& e : testenv::list_dir(store.tmp_dir()))
      n += e.rfind("pip-spare-", 0) == 0 ? 1 : 0;
    return n;
  }
};

}  // namespace

TEST_CASE("pip spares: one resolve, as pip itself would, then the spare is gone", "[pip-spare]") {
  SpareWorld w;
  auto spares = w.spares();
  w.prepare(spares);
  REQUIRE(testenv::eventually([&] { return spares.count() == 1; }, 10s));
  REQUIRE(w.spare_pids().size() == 1);

  std::vector<std::string> lines;
  std::vector<std::string> notes;
  auto r = spares.run(
      w.python, w.resolve_args(), std::chrono::steady_clock::now() + 60s,
      [&](std::string_view l) { lines.emplace_back(l); }, {},
      [&](std::string_view l) { notes.emplace_back(l); });
  INFO((notes.empty() ? std::string() : notes[0]));
  REQUIRE(r.has_value());
  std::string said;
  for (const auto& l : lines)
    said += l + "\n";
  INFO(said);
  CHECK(r->ok());
  CHECK_THAT(said, Contains("Would install gamma-0.3"));
  CHECK_THAT(said, !Contains(clsi::venv::kSpareReadyLine));
  REQUIRE(notes.size() == 1);
  CHECK_THAT(notes[0], Contains("pip was started ahead of this build"));
  // pip's report, as the installer reads it.
  CHECK_THAT(testenv::read_file(w.tmp / "report.json"), Contains("\"gamma\""));
  // Used once: the process and its directory are gone, none is waiting.
  CHECK(spares.count() == 0);
  CHECK(testenv::eventually([&] { return w.spare_pids().empty(); }, 5s));
  CHECK(w.spare_dirs() == 0);
  // Nothing is ready now: the caller starts pip itself.
  CHECK_FALSE(spares
                  .run(
                      w.python, w.resolve_args(), std::chrono::steady_clock::now() + 60s,
                      [](std::string_view) {}, {}, [](std::string_view) {})
                  .has_value());
}

TEST_CASE("pip spares: a failed resolve is pip's, with pip's words and status", "[pip-spare]") {
  SpareWorld w;
  testenv::write_file(w.tmp / "requirements.txt", "gamma==9.9\n");
  auto spares = w.spares();
  w.prepare(spares);
  REQUIRE(testenv::eventually([&] { return spares.count() == 1; }, 10s));
  std::string said;
  auto r = spares.run(
      w.python, w.resolve_args(), std::chrono::steady_clock::now() + 60s,
      [&](std::string_view l) { said += std::string(l) + "\n"; }, {}, [](std::string_view) {});
  REQUIRE(r.has_value());
  INFO(said);
  CHECK_FALSE(r->ok());
  CHECK(clsi::Child::shell_status(r->wait_status) == 1);
  CHECK_THAT(said, Contains("No matching distribution found for gamma==9.9"));
}

TEST_CASE("pip spares: not used for another interpreter, nor when its directory is gone",
          "[pip-spare]") {
  SpareWorld w;
  auto spares = w.spares();
  std::vector<std::string> notes;
  auto note = [&](std::string_view l) { notes.emplace_back(l); };
  auto none = [](std::string_view) {};
  const auto deadline = std::chrono::steady_clock::now() + 60s;

  SECTION("the interpreter changed since it started") {
    w.prepare(spares);
    REQUIRE(testenv::eventually([&] { return spares.count() == 1; }, 10s));
    auto other = w.python;
    other.identity.mtime_ns += 1;  // the file was replaced
    CHECK_FALSE(spares.run(other, w.resolve_args(), deadline, none, {}, note).has_value());
    REQUIRE(notes.size() == 1);
    CHECK_THAT(notes[0], Contains("the interpreter changed"));
  }
  SECTION("tmp/ was emptied under it") {
    w.prepare(spares);
    REQUIRE(testenv::eventually([&] { return spares.count() == 1; }, 10s));
    REQUIRE(testenv::eventually([&] { return w.spare_dirs() == 1; }, 10s));
    // (The spare may still be making its venv in there: removed until it is gone.)
    REQUIRE(testenv::eventually(
        [&] {
          for (const auto& e : testenv::list_dir(w.store.tmp_dir()))
            (void)testenv::run({"rm", "-rf", w.store.tmp_dir() + "/" + e});
          return testenv::list_dir(w.store.tmp_dir()).empty();
        },
        10s));
    CHECK_FALSE(spares.run(w.python, w.resolve_args(), deadline, none, {}, note).has_value());
    REQUIRE(notes.size() == 1);
    CHECK_THAT(notes[0], Contains("is gone or was changed"));
  }
  SECTION("it was killed while it waited") {
    w.prepare(spares);
    REQUIRE(testenv::eventually([&] { return spares.count() == 1; }, 10s));
    // Ready: it waits on stdin (a process killed while it starts is the
    // next section's).
    for (int pid : w.spare_pids())
      ::kill(pid, SIGKILL);
    std::optional<clsi::RunOutcome> r;
    // Taken before or after the spares' thread saw it end: either way not used.
    r = spares.run(w.python, w.resolve_args(), deadline, none, {}, note);
    CHECK_FALSE(r.has_value());
  }
  // Whatever became of it, nothing is left.
  CHECK(testenv::eventually([&] { return w.spare_pids().empty(); }, 5s));
}

TEST_CASE("pip spares: one that ends by itself is told, and not started again at once",
          "[pip-spare]") {
  SpareWorld w;
  auto spares = w.spares(2s);
  // An interpreter that cannot make the spare's venv: it exits at once.
  auto broken = w.python;
  broken.real_path = "/bin/false";
  spares.prepare([broken] { return clsi::venv::Expected<clsi::venv::InterpreterFacts>(broken); });
  REQUIRE(testenv::eventually(
      [&] {
        std::lock_guard lock(w.mu);
        return !w.oplog.empty();
      },
      10s));
  {
    std::lock_guard lock(w.mu);
    CHECK_THAT(w.oplog[0], Contains("ended by itself before a build used it (exit status 1)"));
  }
  CHECK(spares.count() == 0);
  spares.prepare([broken] { return clsi::venv::Expected<clsi::venv::InterpreterFacts>(broken); });
  std::this_thread::sleep_for(1500ms);
  std::lock_guard lock(w.mu);
  CHECK(w.oplog.size() == 1);  // not started again within max_idle
}

TEST_CASE("pip spares: one unused for max_idle is stopped, and all stop with their owner",
          "[pip-spare]") {
  SpareWorld w;
  {
    auto spares = w.spares(1500ms);
    w.prepare(spares);
    REQUIRE(testenv::eventually([&] { return spares.count() == 1; }, 10s));
    CHECK(testenv::eventually([&] { return spares.count() == 0; }, 10s));
    CHECK(testenv::eventually([&] { return w.spare_pids().empty(); }, 5s));
    CHECK(testenv::eventually([&] { return w.spare_dirs() == 0; }, 5s));
    w.prepare(spares);
    REQUIRE(testenv::eventually([&] { return spares.count() == 1; }, 10s));
    REQUIRE(w.spare_pids().size() == 1);
  }
  CHECK(w.spare_pids().empty());
  CHECK(w.spare_dirs() == 0);
}
