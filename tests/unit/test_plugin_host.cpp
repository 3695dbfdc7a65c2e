// The per-compile rules every host shares (clsi::PluginHost, HostCompile),
// through the real C ABI with fixture plugins built as MODULE libraries.
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "clsi/plugin_host.hpp"
#include "test_env.hpp"

using Catch::Contains;

namespace {

std::string fixture(const std::string& name) {
  return std::string(CLSI_FIXTURE_DIR) + "/fixture_" + name + ".so";
}

struct Logged {
  std::mutex mu;
  std::vector<std::string> lines;
  clsi::OperatorLog sink() {
    return
        [this](std::string_view plugin, clsi_log_level, std::string_view id, std::string_view msg) {
          std::lock_guard lock(mu);
          lines.push_back(std::string(plugin) + "|" + std::string(id) + "|" + std::string(msg));
        };
  }
};

std::string config_file(const testenv::TempDir& tmp, const std::string& name,
                        const std::string& mode) {
  std::string path = tmp / name;
  testenv::write_file(path, mode + "\n");
  return path;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& l : v)
    s += l + "\n";
  return s;
}

}  // namespace

TEST_CASE("host: adjustments apply in order on the base environment, each with its plugin",
          "[host]") {
  testenv::TempDir tmp;
  Logged log;
  std::string why;
  // Two instances of one plugin, each with its own configuration.
  auto host = clsi::PluginHost::load({{fixture("abi11"), config_file(tmp, "a.yaml", "env")},
                                      {fixture("abi11"), config_file(tmp, "b.yaml", "env")}},
                                     log.sink(), why);
  REQUIRE(host);
  std::vector<std::string> lines;
  clsi::CompileRequest r;
  r.compile_dir = tmp.path();
  r.compile_id = "c-42";
  r.permissions = {"custom.x"};
  r.base_env = {"PATHLIKE=/base/a:/base/b", "DROPME=1", "KEEP=k"};
  clsi::HostCompile c(*host, r,
                      [&](std::string_view, std::string_view l) { lines.emplace_back(l); });
  auto pre = c.pre_compile();
  REQUIRE(pre.ok);
  auto text = joined(lines);
  INFO(text);
  CHECK_THAT(text, Contains("abi11: base PATHLIKE=/base/a:/base/b\n"));
  // The second plugin sees the first one's adjustments.
  CHECK_THAT(text, Contains("abi11: base PATHLIKE=/from/abi11:/base/a:/base/b\n"));
  CHECK_THAT(text, Contains("now PATHLIKE=/from/abi11:/from/abi11:/base/a:/base/b DROPME=<unset>"));
  CHECK_THAT(text, Contains("abi11: python.install=no custom.x=yes"));
  CHECK_THAT(text, Contains("abi11: compile id=c-42"));
  auto env = c.environment();
  CHECK(std::find(env.begin(), env.end(), "KEEP=k") != env.end());
  CHECK(std::find(env.begin(), env.end(), "PATHLIKE=/from/abi11:/from/abi11:/base/a:/base/b") !=
        env.end());
  CHECK(std::find(env.begin(), env.end(), "SETME=abi11") != env.end());
  for (const auto& e : env)
    CHECK(e.rfind("DROPME=", 0) != 0);
  auto changes = c.env_changes();
  REQUIRE(changes.size() == 6);
  CHECK(changes[0].op == CLSI_ENV_PREPEND);
  CHECK(changes[0].plugin == "abi11");
  CHECK(changes[1].op == CLSI_ENV_UNSET);

  auto post = c.post_compile({0, false, 5});
  CHECK(post.size() == 2);
  CHECK_THAT(joined(lines), Contains("abi11: post exit=0 late adjustment refused=yes"));
  // Exactly once.
  CHECK(c.post_compile({0, false, 5}).empty());
  CHECK_THAT(joined(log.lines), Contains("abi11|c-42|abi11 compile log"));
}

TEST_CASE("host: a PREPEND onto an unset variable is just the value", "[host]") {
  testenv::TempDir tmp;
  Logged log;
  std::string why;
  auto host = clsi::PluginHost::load({{fixture("abi11"), config_file(tmp, "a.yaml", "env")}},
                                     log.sink(), why);
  REQUIRE(host);
  clsi::CompileRequest r;
  r.compile_dir = tmp.path();
  r.permissions = {CLSI_PERMISSION_PYTHON_INSTALL};
  std::vector<std::string> lines;
  clsi::HostCompile c(*host, r,
                      [&](std::string_view, std::string_view l) { lines.emplace_back(l); });
  REQUIRE(c.pre_compile().ok);
  auto env = c.environment();
  CHECK(std::find(env.begin(), env.end(), "PATHLIKE=/from/abi11") != env.end());
  CHECK_THAT(joined(lines), Contains("python.install=yes custom.x=no"));
  CHECK_FALSE(c.compile_id().empty());
}

TEST_CASE("host: a waiting hook sees the cancellation and returns", "[host]") {
  testenv::TempDir tmp;
  Logged log;
  std::string why;
  auto host = clsi::PluginHost::load({{fixture("abi11"), config_file(tmp, "w.yaml", "wait")}},
                                     log.sink(), why);
  REQUIRE(host);
  clsi::CompileRequest r;
  r.compile_dir = tmp.path();
  std::vector<std::string> lines;
  std::mutex mu;
  clsi::HostCompile c(*host, r, [&](std::string_view, std::string_view l) {
    std::lock_guard lock(mu);
    lines.emplace_back(l);
  });
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    c.cancel();
  });
  auto pre = c.pre_compile();
  canceller.join();
  REQUIRE(pre.statuses.size() == 1);
  CHECK(pre.statuses[0] == CLSI_STATUS_FELL_BACK);
  CHECK_THAT(joined(lines), Contains("abi11: saw the cancellation"));

  // A deadline that passes is a cancellation too.
  clsi::CompileRequest late = r;
  late.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
  clsi::HostCompile d(*host, late, [&](std::string_view, std::string_view l) {
    std::lock_guard lock(mu);
    lines.emplace_back(l);
  });
  CHECK(d.pre_compile().statuses.at(0) == CLSI_STATUS_FELL_BACK);
}

TEST_CASE("host: optional plugins are skipped with a warning, required ones refuse", "[host]") {
  testenv::TempDir tmp;
  Logged log;
  std::string why;
  auto cfg = config_file(tmp, "a.yaml", "env");
  for (const std::string& bad :
       {std::string(tmp / "missing.so"), fixture("wrong_abi"), fixture("create_fails")}) {
    CAPTURE(bad);
    auto refused =
        clsi::PluginHost::load({{bad, cfg, false}, {fixture("abi11"), cfg}}, log.sink(), why);
    CHECK_FALSE(refused);
    CHECK_FALSE(why.empty());
    auto skipped =
        clsi::PluginHost::load({{bad, cfg, true}, {fixture("abi11"), cfg}}, log.sink(), why);
    REQUIRE(skipped);
    CHECK(skipped->size() == 1);
    CHECK(skipped->name(0) == "abi11");
    REQUIRE(skipped->skipped().size() == 1);
    CHECK_THAT(skipped->skipped()[0], Contains("optional plugin skipped"));
  }
}

TEST_CASE("host: ABI 1.1 hooks may be NULL", "[host]") {
  testenv::TempDir tmp;
  Logged log;
  std::string why;
  auto host = clsi::PluginHost::load({{fixture("null_hooks"), ""}}, log.sink(), why);
  INFO(why);
  REQUIRE(host);
  clsi::CompileRequest r;
  r.compile_dir = tmp.path();
  clsi::HostCompile c(*host, r, {});
  auto pre = c.pre_compile();
  CHECK(pre.ok);
  CHECK(pre.statuses.at(0) == CLSI_STATUS_NOTHING_TO_DO);
  CHECK(c.post_compile({0, false, 0}).at(0) == CLSI_STATUS_OK);
}

TEST_CASE("host: post-compile runs from the destructor when nobody called it", "[host]") {
  testenv::TempDir tmp;
  Logged log;
  std::string why;
  auto host = clsi::PluginHost::load({{fixture("abi11"), config_file(tmp, "a.yaml", "env")}},
                                     log.sink(), why);
  REQUIRE(host);
  clsi::CompileRequest r;
  r.compile_dir = tmp.path();
  std::vector<std::string> lines;
  {
    clsi::HostCompile c(*host, r,
                        [&](std::string_view, std::string_view l) { lines.emplace_back(l); });
    REQUIRE(c.pre_compile().ok);
  }
  CHECK_THAT(joined(lines), Contains("abi11: post exit=-1"));
}

TEST_CASE("host: a plugin built against ABI 1.0 runs unchanged", "[host]") {
  testenv::TempDir tmp;
  Logged log;
  std::string why;
  auto host = clsi::PluginHost::load({{fixture("abi10"), ""}}, log.sink(), why);
  INFO(why);
  REQUIRE(host);
  clsi::CompileRequest r;
  r.compile_dir = tmp.path();
  r.project_id = "p7";
  std::vector<std::string> lines;
  clsi::HostCompile c(*host, r,
                      [&](std::string_view, std::string_view l) { lines.emplace_back(l); });
  REQUIRE(c.pre_compile().ok);
  auto env = c.environment();
  CHECK(std::find(env.begin(), env.end(), "ABI10_VAR=from-1.0:p7") != env.end());
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "abi10: pre-compile");
}
