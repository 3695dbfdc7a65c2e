// The build service's pip started ahead of the next build
// (plugin/src/pip_spare.hpp), end to end: clsi-runner, clsi-venvs serve, real
// pip, against the same service without it (service.prestart_pip: false).
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include "venv_world.hpp"

using Catch::Contains;
using namespace std::chrono_literals;

namespace {

std::string build_logs(const testenv::VenvWorld& w) {
  std::string all;
  for (const auto& l : testenv::list_dir(w.venvs + "/logs"))
    all += testenv::read_file(w.venvs + "/logs/" + l);
  return all;
}

std::string log_of(const testenv::VenvWorld& w, const std::string& key) {
  return testenv::read_file(w.venvs + "/logs/" + key + ".log");
}

std::vector<int> spares_of(const testenv::VenvWorld& w) {
  return testenv::processes_mentioning(w.venvs + "/tmp/pip-spare-");
}

// The lines a compile added that annotate the requirements file.
std::string annotations(const std::string& log) {
  std::istringstream in(log);
  std::string out;
  for (std::string line; std::getline(in, line);)
    if (line.rfind("./requirements.txt:", 0) == 0) out += line + "\n";
  return out;
}

// The key of the only venv whose record names exactly `requested`.
std::string key_of(const testenv::VenvWorld& w, const std::vector<std::string>& requested) {
  for (const auto& k : w.env_dirs())
    if (testenv::record_of(w.venvs, k).requested == requested) return k;
  return {};
}

}  // namespace

TEST_CASE("pip started ahead: builds resolve in it, with what the build's own pip resolves",
          "[pip-spare][service]") {
  testenv::VenvWorld ahead;
  testenv::VenvWorld own;
  ahead.configure();
  own.service_lines = {"prestart_pip: false"};
  own.configure();
  const std::string code = "import alpha, gamma; print('RENDER', alpha.MESSAGE, gamma.MESSAGE)";

  // The service started one as it started; each build takes it and the
  // next one is started after the build.
  REQUIRE(testenv::eventually([&] { return !spares_of(ahead).empty(); }, 10s));
  for (const char* requirements : {"alpha\ngamma\n", "gamma\nalpha>=1\n"}) {
    auto a = ahead.compile(ahead.project(requirements), true, code);
    auto o = own.compile(own.project(requirements), true, code);
    INFO(a);
    INFO(o);
    CHECK_THAT(a, Contains("RENDER alpha 2.1 gamma here"));
    CHECK_THAT(o, Contains("RENDER alpha 2.1 gamma here"));
  }
  REQUIRE(ahead.env_dirs().size() == 2);
  REQUIRE(own.env_dirs().size() == 2);
  for (const auto& requested : std::vector<std::vector<std::string>>{
           {"alpha", "gamma"}, {"alpha>=1", "gamma"}}) {  // sorted, as keyed
    const std::string a = key_of(ahead, requested);
    const std::string o = key_of(own, requested);
    REQUIRE_FALSE(a.empty());
    REQUIRE_FALSE(o.empty());
    CHECK_THAT(log_of(ahead, a), Contains("clsi-venvs: pip was started ahead of this build"));
    CHECK_THAT(log_of(own, o), !Contains("started ahead"));
    auto ra = testenv::record_of(ahead.venvs, a);
    auto ro = testenv::record_of(own.venvs, o);
    CHECK(ra.installed == ro.installed);
    CHECK(ra.dists == ro.dists);  // the very wheels, by sha256
  }
  // A resolve that fails says the same on the user's lines.
  auto a = ahead.compile(ahead.project("alpha==9.9\n"), true, "print('RENDER ran')");
  auto o = own.compile(own.project("alpha==9.9\n"), true, "print('RENDER ran')");
  INFO(a);
  INFO(o);
  CHECK_FALSE(annotations(a).empty());
  CHECK(annotations(a) == annotations(o));
  CHECK_THAT(build_logs(ahead), Contains("pip was started ahead"));
  // Switched off, none was ever started.
  CHECK(spares_of(own).empty());
  CHECK_THAT(build_logs(own), !Contains("started ahead"));
}

TEST_CASE("pip started ahead: one killed while it waits is not used, and the build goes on",
          "[pip-spare][service]") {
  testenv::VenvWorld w;
  w.configure();
  REQUIRE(testenv::eventually([&] { return !spares_of(w).empty(); }, 10s));
  for (int pid : spares_of(w))
    ::kill(pid, SIGKILL);
  auto log = w.compile(w.project("alpha\n"));
  INFO(log);
  INFO(w.service->log());
  CHECK_THAT(log, Contains("RENDER alpha 2.1"));
  CHECK_THAT(build_logs(w), !Contains("pip was started ahead"));
  CHECK(testenv::list_dir(w.venvs + "/failures").empty());
  // The operator is told of the one that ended, if the service saw it end
  // before the build came; the build, if the build took it.
  const bool told = w.service->log().find("ended by itself") != std::string::npos ||
                    build_logs(w).find("was not used") != std::string::npos;
  CHECK(told);
}

TEST_CASE("pip started ahead: none is left when the service stops, or is killed",
          "[pip-spare][service]") {
  testenv::VenvWorld w;
  w.configure();
  REQUIRE(testenv::eventually([&] { return !spares_of(w).empty(); }, 10s));
  SECTION("stopped") {
    CHECK(w.service->stop() == 0);
    CHECK(spares_of(w).empty());
    for (const auto& e : testenv::list_dir(w.venvs + "/tmp"))
      CHECK_THAT(e, !Contains("pip-spare-"));
  }
  SECTION("killed (SIGKILL)") {
    w.service->kill_now();
    CHECK(testenv::eventually([&] { return spares_of(w).empty(); }, 10s));
    // What it left in tmp/ goes when the next service starts, which starts
    // a new one.
    w.start_service();
    INFO(w.service->log());
    CHECK_THAT(w.service->log(), Contains("pip-spare-"));
    CHECK(testenv::eventually([&] { return !spares_of(w).empty(); }, 10s));
  }
}
