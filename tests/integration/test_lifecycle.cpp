// The store over time: clsi-venvs (list, gc, warm, remove, stats), failure
// memory, and builds that outlive the compile that started them.
#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <ctime>
#include <regex>
#include <thread>

#include "venv_world.hpp"

using Catch::Contains;
using testenv::VenvWorld;

namespace {

const std::string kVenvsTool = std::string(CLSI_BUILD_DIR) + "/bin/clsi-venvs";

testenv::CommandResult venvs_tool(const VenvWorld& w, std::vector<std::string> args) {
  args.insert(args.begin(), kVenvsTool);
  args.insert(args.begin() + 2, {"--config", w.config});
  return testenv::run(args);
}

// The key of the only venv whose record lists `requirement`.
std::string key_with(const VenvWorld& w, const std::string& requirement) {
  std::string found;
  for (const auto& key : w.env_dirs()) {
    if (testenv::record_of(w.venvs, key).requested == std::vector<std::string>{requirement})
      found = key;
  }
  return found;
}

void set_last_used(const VenvWorld& w, const std::string& key, std::time_t when) {
  timespec times[2] = {{when, 0}, {when, 0}};
  REQUIRE(::utimensat(AT_FDCWD, (w.venvs + "/envs/" + key + ".complete").c_str(), times, 0) == 0);
}

}  // namespace

TEST_CASE("gc with a budget removes exactly the least recently used venv", "[lifecycle][gc]") {
  VenvWorld w;
  w.configure();
  // Three venvs of about 3 MB each, none sharing its 3 MB with another.
  w.compile(w.project("bulky\nalpha\n"), true, "print(1)");
  w.compile(w.project("bulkier\ngamma\n"), true, "print(1)");
  w.compile(w.project("bulkiest\n"), true, "print(1)");
  REQUIRE(w.env_dirs().size() == 3);
  // Built last, but used longest ago: use, not creation, decides.
  std::string oldest = key_with(w, "bulkiest");
  REQUIRE_FALSE(oldest.empty());
  auto now = std::time(nullptr);
  for (const auto& key : w.env_dirs())
    set_last_used(w, key, now - 60);
  set_last_used(w, oldest, now - 3600);

  auto r = venvs_tool(w, {"gc", "--max-total-mb", "7"});
  INFO(r.output);
  CHECK(r.status == 0);
  auto left = w.env_dirs();
  CHECK(left.size() == 2);
  CHECK(std::find(left.begin(), left.end(), oldest) == left.end());
  CHECK_THAT(r.output, Contains("removed " + oldest.substr(0, 12)));
  CHECK_FALSE(testenv::exists(w.venvs + "/envs/" + oldest + ".complete"));
  // Its distribution went with it (no other venv linked it); the others' stay.
  CHECK_THAT(r.output, Contains("removed distribution"));
  CHECK(testenv::list_dir(w.venvs + "/dists").size() == 5);  // bulky alpha beta; bulkier gamma
  // Nothing half-deleted remains in the store's trash.
  CHECK(testenv::list_dir(w.venvs + "/trash").empty());
}

TEST_CASE("venvs sharing a distribution hold it once, it goes with the last venv that links it",
          "[lifecycle][gc][dists]") {
  VenvWorld w;
  w.configure();
  auto du = [&] { return testenv::du_bytes(w.venvs); };
  w.compile(w.project("bulky\n"), true, "import bulky; print('RENDER', bulky.X)");
  const auto one = du();
  // Four more venvs with bulky's 3 MB, each adding a small package.
  for (const char* other : {"alpha\n", "gamma\n", "beta\n", "alpha\ngamma\n"})
    w.compile(w.project(std::string("bulky\n") + other), true, "import bulky");
  REQUIRE(w.env_dirs().size() == 5);
  const auto five = du();
  INFO("one venv: " << one << " bytes; five sharing bulky: " << five);
  CHECK(five < one + 2 * 1024 * 1024);  // not 4 x 3 MB more
  // gc measures as du does, each shared file once: within a budget of that
  // (counting bulky five times would be 12 MB more), it removes nothing.
  auto dry =
      venvs_tool(w, {"gc", "--max-total-mb", std::to_string(five / 1024 / 1024 + 2), "--dry-run"});
  INFO(dry.output);
  CHECK(dry.status == 0);
  CHECK_THAT(dry.output, !Contains("would remove"));

  std::string bulky_key;  // the venv of bulky alone
  for (const auto& key : w.env_dirs()) {
    if (testenv::record_of(w.venvs, key).requested == std::vector<std::string>{"bulky"})
      bulky_key = key;
  }
  REQUIRE_FALSE(bulky_key.empty());
  auto dists_before = testenv::list_dir(w.venvs + "/dists").size();
  // Every venv but one gone: bulky's distribution stays, linked by that one.
  auto now = std::time(nullptr);
  for (const auto& key : w.env_dirs())
    set_last_used(w, key, key == bulky_key ? now : now - 3600);
  auto r = venvs_tool(w, {"gc", "--unused-for", "30m"});
  INFO(r.output);
  CHECK(w.env_dirs() == std::vector<std::string>{bulky_key});
  CHECK(testenv::list_dir(w.venvs + "/dists").size() == 1);
  CHECK(dists_before > 1);
  CHECK(r.status == 0);
  // The survivor still imports it, from its links.
  auto log = w.compile(w.project("bulky\n"), true, "import bulky; print('RENDER', bulky.X)");
  CHECK_THAT(log, Contains("RENDER 1"));
  // The last venv gone, the distribution goes.
  r = venvs_tool(w, {"gc", "--max-total-mb", "0"});
  INFO(r.output);
  CHECK_THAT(r.output, Contains("removed distribution"));
  CHECK(testenv::list_dir(w.venvs + "/dists").empty());
}

TEST_CASE("gc --dry-run reports and removes nothing", "[lifecycle][gc]") {
  VenvWorld w;
  w.configure();
  w.compile(w.project("gamma\n"), true, "print(1)");
  auto r = venvs_tool(w, {"gc", "--max-total-mb", "0", "--dry-run"});
  CHECK(r.status == 0);
  CHECK_THAT(r.output, Contains("would remove"));
  CHECK(w.env_dirs().size() == 1);
}

TEST_CASE("a venv in use by a running compile survives gc --max-total-mb 0", "[lifecycle][gc]") {
  VenvWorld w;
  w.configure();
  w.compile(w.project("gamma\n"), true, "print(1)");
  w.compile(w.project("alpha\n"), true, "print(1)");
  REQUIRE(w.env_dirs().size() == 2);
  std::string in_use = key_with(w, "gamma");

  // A compile that renders for a while on the gamma venv.
  auto dir = w.project("gamma\n");
  std::string started = w.tmp / "render-started";
  std::thread compile([&] {
    w.compile(
        dir, true,
        "import gamma, time, pathlib; pathlib.Path('" + started + "').touch(); time.sleep(4)");
  });
  for (int i = 0; i < 200 && !testenv::exists(started); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  REQUIRE(testenv::exists(started));
  auto r = venvs_tool(w, {"gc", "--max-total-mb", "0"});
  compile.join();
  INFO(r.output);
  CHECK_THAT(r.output, Contains("kept " + in_use.substr(0, 12) + ": in use"));
  REQUIRE(w.env_dirs().size() == 1);
  CHECK(w.env_dirs()[0] == in_use);
  CHECK(testenv::exists(w.venvs + "/envs/" + in_use + ".complete"));
  // Once the compile is over, it can go.
  r = venvs_tool(w, {"gc", "--max-total-mb", "0"});
  CHECK(w.env_dirs().empty());
}

TEST_CASE("list, stats and remove describe and manage the store", "[lifecycle][admin]") {
  VenvWorld w;
  w.configure();
  w.compile(w.project("alpha\n"));
  w.compile(w.project("alpha\n"));  // a hit
  std::string key = w.env_dirs().at(0);

  auto list = venvs_tool(w, {"list"});
  CHECK(list.status == 0);
  CHECK_THAT(list.output, Contains(key.substr(0, 12)));
  CHECK_THAT(list.output, Contains("complete"));
  CHECK_THAT(list.output, Contains("alpha"));
  auto json = venvs_tool(w, {"list", "--json"});
  CHECK_THAT(json.output, Contains("\"key\": \"" + key + "\""));
  CHECK_THAT(json.output, Contains("\"beta==2.1\""));

  auto stats = venvs_tool(w, {"stats", "--json"});
  CHECK_THAT(stats.output, Contains("\"hits\": 1"));
  CHECK_THAT(stats.output, Contains("\"misses\": 1"));
  CHECK_THAT(stats.output, Contains("\"builds\": 1"));
  auto prom = venvs_tool(w, {"stats", "--prometheus"});
  CHECK_THAT(prom.output, Contains("# TYPE clsi_venv_cache_hits_total counter"));
  CHECK_THAT(prom.output, Contains("clsi_venv_cache_hits_total 1\n"));
  // A histogram, which sums across hosts (issue 13), not a summary's quantiles.
  CHECK_THAT(prom.output, Contains("# TYPE clsi_venv_build_duration_seconds histogram"));
  CHECK_THAT(prom.output, Contains("clsi_venv_build_duration_seconds_count 1\n"));

  auto removed = venvs_tool(w, {"remove", key.substr(0, 12)});
  CHECK(removed.status == 0);
  CHECK(w.env_dirs().empty());
  auto missing = venvs_tool(w, {"remove", key.substr(0, 12)});
  CHECK(missing.status != 0);
  CHECK_THAT(missing.output, Contains("no environment"));
}

TEST_CASE("warm builds ahead of demand with a compile's validation", "[lifecycle][admin]") {
  VenvWorld w;
  w.configure();
  testenv::write_file(w.tmp / "reqs/requirements.txt", "alpha\n");
  auto r = venvs_tool(w, {"warm", w.tmp / "reqs/requirements.txt"});
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK_THAT(r.output, Contains("built environment"));
  auto log = w.compile(w.project("alpha\n"));
  CHECK_THAT(log, Contains("reusing environment"));
  CHECK_THAT(log, Contains("RENDER alpha 2.1"));

  testenv::write_file(w.tmp / "bad/requirements.txt", "alpha\n--index-url http://127.0.0.1:9/\n");
  auto bad = venvs_tool(w, {"warm", w.tmp / "bad/requirements.txt"});
  CHECK(bad.status != 0);
  CHECK_THAT(bad.output, Contains("./requirements.txt:2: refused"));
}

TEST_CASE("a failed build is remembered and not retried in a loop", "[lifecycle][failure]") {
  VenvWorld w;
  w.configure({"retry_failed_after_s: 600"});
  auto dir = w.project("no-such-package\n");
  auto first = w.compile(dir, true, "print('RENDER ran')");
  REQUIRE_THAT(first, Contains("[python-venv] resolving "));
  auto second = w.compile(dir, true, "print('RENDER ran')");
  INFO(second);
  CHECK_THAT(second, Contains("the last build of environment"));
  CHECK_THAT(second, Contains("no-such-package"));  // the remembered reason
  CHECK_THAT(second, Contains("it is tried again after"));
  CHECK_THAT(second, !Contains("[python-venv] resolving "));  // pip did not run
  CHECK_THAT(second, Contains("RENDER ran"));

  SECTION("with retry_failed_after_s: 0 every compile retries") {
    w.configure({"retry_failed_after_s: 0"});
    auto third = w.compile(dir, true, "print('RENDER ran')");
    CHECK_THAT(third, Contains("[python-venv] resolving "));
  }
}

TEST_CASE("a build cut short by the compile's deadline finishes in the background",
          "[lifecycle][background]") {
  VenvWorld w;
  testenv::IndexServer slow(w.index, 1200);
  w.configure({"render_reserve_s: 3"}, slow.url());
  int status = -1;
  auto first =
      w.compile(w.project("alpha\n"), true, "print('RENDER ran')", {}, {"--timeout", "5"}, &status);
  INFO(first);
  CHECK(status == 0);
  CHECK_THAT(first, Contains("being prepared in the background"));
  CHECK_THAT(first, Contains("compile again shortly"));
  CHECK_THAT(first, Contains("RENDER ran"));
  // The next compile, with time to spare, waits for that same build and uses it.
  auto second = w.compile(w.project("alpha\n"));
  INFO(second);
  CHECK_THAT(second, Contains("RENDER alpha 2.1"));
  CHECK_THAT(second, !Contains("yet; building environment"));
  CHECK(testenv::count_occurrences(testenv::read_file(w.venvs + "/events.log"), " build ") == 1);
}

TEST_CASE("a build over the eviction budget evicts the least recently used venv itself",
          "[lifecycle][gc]") {
  VenvWorld w;
  w.configure({"eviction:", "  max_total_mb: 5"});
  w.compile(w.project("bulky\n"), true, "print(1)");
  REQUIRE(w.env_dirs().size() == 1);
  std::string first = w.env_dirs()[0];
  set_last_used(w, first, std::time(nullptr) - 600);
  auto log = w.compile(w.project("bulkier\ngamma\n"), true,
                       "import gamma; print('RENDER', gamma.MESSAGE)");
  INFO(log);
  CHECK_THAT(log, Contains("RENDER gamma here"));
  // Store-wide work is the operator's business, not this user's: the
  // service does it once the compile has its answer.
  CHECK_THAT(log, !Contains("gc:"));
  // The pass is over once it has said what it removed (the venv leaves
  // envs/ before the line is written).
  const std::string removed = "gc: removed " + first.substr(0, 12);
  CHECK(testenv::eventually([&] {
    return w.env_dirs().size() == 1 && w.service->log().find(removed) != std::string::npos;
  }));
  auto service_log = w.service->log();
  INFO(service_log);
  CHECK_THAT(service_log, Contains("over eviction.max_total_mb (5 MB)"));
  CHECK_THAT(service_log, Contains(removed));
  REQUIRE(w.env_dirs().size() == 1);
  CHECK(w.env_dirs()[0] != first);

  SECTION("not with gc_after_build: false") {
    w.configure({"eviction:", "  max_total_mb: 5", "  gc_after_build: false"});
    w.compile(w.project("bulky\nalpha\n"), true, "print(1)");
    CHECK(w.env_dirs().size() == 2);
  }
}

TEST_CASE("a failure stamped in the future is ignored, and the message carries the date",
          "[lifecycle][failure]") {
  VenvWorld w;
  w.configure({"retry_failed_after_s: 600"});
  auto dir = w.project("no-such-package\n");
  w.compile(dir, true, "print('RENDER ran')");
  auto failures = testenv::list_dir(w.venvs + "/failures");
  REQUIRE(failures.size() == 1);
  auto second = w.compile(dir, true, "print('RENDER ran')");
  INFO(second);
  // "failed at YYYY-MM-DD HH:MM:SS UTC"
  CHECK(std::regex_search(second, std::regex(R"(failed at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC)")));
  // The year 2100, as clock skew or a forged file would have it.
  testenv::write_file(w.venvs + "/failures/" + failures[0], "4102444800\nblocked for good\n");
  auto third = w.compile(dir, true, "print('RENDER ran')");
  INFO(third);
  CHECK_THAT(third, !Contains("blocked for good"));
  CHECK_THAT(third, Contains("[python-venv] resolving "));  // tried again
}

TEST_CASE("an unreachable index is the service's problem and is not remembered",
          "[lifecycle][failure]") {
  VenvWorld w;
  // A loopback port where nothing listens.
  int port = 0;
  {
    testenv::IndexServer gone(w.index);
    auto url = gone.url();
    port = std::stoi(url.substr(url.rfind(':') + 1));
  }
  w.configure({"retry_failed_after_s: 600"},
              "http://127.0.0.1:" + std::to_string(port) + "/simple/");
  auto dir = w.project("alpha\n");
  auto first = w.compile(dir, true, "print('RENDER ran')");
  INFO(first);
  CHECK_THAT(first, Contains("problem of the compile service, not of ./requirements.txt"));
  CHECK_THAT(first, Contains("RENDER ran"));
  CHECK(testenv::list_dir(w.venvs + "/failures").empty());
  CHECK_THAT(w.service->log(), Contains("warning"));
  auto second = w.compile(dir, true, "print('RENDER ran')");
  INFO(second);
  CHECK_THAT(second, !Contains("the last build of environment"));
}

TEST_CASE("pip killed from outside (as the OOM killer does) is not remembered",
          "[lifecycle][failure]") {
  VenvWorld w;
  testenv::IndexServer slow(w.index, 1500);
  w.configure({"retry_failed_after_s: 600"}, slow.url());
  auto dir = w.project("alpha\n");
  std::string first;
  std::thread compile([&] { first = w.compile(dir, true, "print('RENDER ran')"); });
  // pip is resolving: its first request reached the (slow) index. Then pip
  // itself, started ahead or not, not `python -m venv --without-pip`, which
  // may be exiting as it is found (a kill that then hits nothing).
  REQUIRE(testenv::eventually([&] { return !slow.requests().empty(); }, std::chrono::seconds(10)));
  std::vector<int> pips;
  for (int pid : testenv::processes_mentioning(w.venvs))
    if (testenv::is_pip(pid)) pips.push_back(pid);
  REQUIRE_FALSE(pips.empty());
  for (int pid : pips)
    ::kill(pid, SIGKILL);
  compile.join();
  INFO(first);
  CHECK_THAT(first, Contains("not of ./requirements.txt"));
  CHECK(testenv::list_dir(w.venvs + "/failures").empty());
  auto second = w.compile(w.project("alpha\n"));
  INFO(second);
  CHECK_THAT(second, Contains("RENDER alpha 2.1"));
}
