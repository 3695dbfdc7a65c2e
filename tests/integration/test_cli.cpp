// The command lines of clsi-venvs and clsi-runner, as a script sees them
// (issue 13): --help and `help CMD` exit 0 and describe every option;
// --version; unknown or misplaced options and missing arguments are usage
// errors (clsi-venvs: 2; clsi-runner: 125) with a message; --json output
// parses; a gc that could not remove a venv exits 1; configuration errors
// say what is wrong. Runs the real binaries.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "store.hpp"
#include "test_env.hpp"
#include "test_users.hpp"

using Catch::Contains;
using nlohmann::json;

namespace {

const std::string kVenvs = std::string(CLSI_BUILD_DIR) + "/bin/clsi-venvs";
const std::string kRunner = CLSI_RUNNER_PATH;
const std::vector<std::string> kCommands = {"list", "gc", "warm", "remove", "stats", "serve"};

#define REQUIRE_ROOT()                                \
  do {                                                \
    if (::geteuid() != 0) {                           \
      WARN("skipped: a real second user needs root"); \
      return;                                         \
    }                                                 \
  } while (0)

// stdout and stderr apart: --json promises a parseable stdout.
struct Split {
  int status = -1;
  std::string out;
  std::string err;
};

Split run_split(const std::vector<std::string>& argv, const std::string& scratch,
                std::map<std::string, std::string> env = {}) {
  static int n = 0;
  const std::string err_file = scratch + "/stderr-" + std::to_string(++n);
  std::vector<std::string> a = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>\"$CLSI_TEST_STDERR\""};
  a.insert(a.end(), argv.begin(), argv.end());
  env["CLSI_TEST_STDERR"] = err_file;
  auto r = testenv::run(a, env);
  return {r.status, r.output, testenv::read_file(err_file)};
}

// The version in project(... VERSION x.y.z) of the top CMakeLists.txt.
std::string project_version() {
  static const std::regex re(R"(project\(clsi_python_venv VERSION ([0-9.]+))");
  std::smatch m;
  const std::string text = testenv::read_file(std::string(CLSI_SOURCE_DIR) + "/CMakeLists.txt");
  REQUIRE(std::regex_search(text, m, re));
  return m[1];
}

// A store laid out by hand, a configuration that names it, and a socket
// where no service listens.
struct CliWorld {
  testenv::TempDir tmp;
  std::string venvs = tmp / "venvs";
  std::string config = tmp / "plugin.yaml";
  std::string socket = tmp / "service.sock";
  clsi::venv::Store store{venvs};

  explicit CliWorld(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> lines = {"venvs_dir: " + venvs, "service:", "  socket: " + socket,
                                      "  connect_timeout_ms: 200"};
    lines.insert(lines.end(), extra.begin(), extra.end());
    testenv::write_plugin_yaml(config, lines);
    REQUIRE(store.ensure_layout().ok());
  }

  // A complete venv (a directory and its record) of `key`.
  void add_complete(const std::string& key, const std::vector<std::string>& requested) {
    REQUIRE(::mkdir(store.env_dir(key).c_str(), 0755) == 0);
    testenv::write_file(store.env_dir(key) + "/marker", "x\n");
    clsi::venv::Record r;
    r.key = key;
    r.requested = requested;
    r.installed = requested;
    r.built_at = 1700000000;
    r.build_seconds = 1.5;
    r.size_bytes = 4096;
    REQUIRE(store.write_record(r).ok());
  }
  // What an interrupted build leaves: a venv directory without a record.
  void add_unfinished(const std::string& key) const {
    REQUIRE(::mkdir(store.env_dir(key).c_str(), 0755) == 0);
  }

  [[nodiscard]] std::vector<std::string> venvs_argv(const std::string& command,
                                                    const std::vector<std::string>& rest) const {
    std::vector<std::string> a = {kVenvs, command, "--config", config};
    a.insert(a.end(), rest.begin(), rest.end());
    return a;
  }
};

const std::string kKeyA(64, 'a');
const std::string kKeyB(64, 'b');

}  // namespace

// ---------------------------------------------------------------------------
// Help and version

TEST_CASE("cli: clsi-venvs --help and help exit 0 and name every command", "[cli]") {
  testenv::TempDir tmp;
  auto help = run_split({kVenvs, "--help"}, tmp.path());
  INFO(help.out << help.err);
  CHECK(help.status == 0);
  CHECK(help.err.empty());
  for (const auto& c : kCommands)
    CHECK_THAT(help.out, Contains("  " + c));
  for (const char* s : {"--version", "-h,--help", "help COMMAND", "Exit status"})
    CHECK_THAT(help.out, Contains(s));
  auto bare = run_split({kVenvs, "help"}, tmp.path());
  CHECK(bare.status == 0);
  CHECK(bare.out == help.out);
  auto short_flag = run_split({kVenvs, "-h"}, tmp.path());
  CHECK(short_flag.status == 0);
  CHECK(short_flag.out == help.out);
}

TEST_CASE("cli: help CMD and CMD --help exit 0 and describe every option of CMD", "[cli]") {
  testenv::TempDir tmp;
  const std::map<std::string, std::vector<std::string>> own = {
      {"list", {}},
      {"gc", {"--max-total-mb", "--dry-run"}},
      {"warm", {"FILE"}},
      {"remove", {"KEY"}},
      {"stats", {"--prometheus"}},
      {"serve", {}}};
  for (const auto& c : kCommands) {
    INFO("command: " << c);
    auto help = run_split({kVenvs, "help", c}, tmp.path());
    auto flag = run_split({kVenvs, c, "--help"}, tmp.path());
    INFO(help.out << help.err);
    CHECK(help.status == 0);
    CHECK(flag.status == 0);
    CHECK(help.out == flag.out);
    CHECK_THAT(help.out, Contains("Usage: clsi-venvs " + c));
    for (const char* option : {"--config", "--venvs-dir", "--json", "-h,--help"})
      CHECK_THAT(help.out, Contains(option));
    for (const auto& option : own.at(c))
      CHECK_THAT(help.out, Contains(option));
    CHECK_THAT(help.out, Contains("Exit status"));
  }
  auto unknown = run_split({kVenvs, "help", "frobnicate"}, tmp.path());
  CHECK(unknown.status == 2);
  CHECK_THAT(unknown.err, Contains("frobnicate"));
}

TEST_CASE("cli: clsi-runner --help exits 0 and describes every option", "[cli]") {
  testenv::TempDir tmp;
  auto help = run_split({kRunner, "--help"}, tmp.path());
  INFO(help.out << help.err);
  CHECK(help.status == 0);
  for (const char* option :
       {"--plugin SO", "--optional-plugin SO", "--plugin-config YAML", "--compile-dir DIR",
        "--project-id ID", "--user-id ID", "--allow-python-install", "--permission NAME",
        "--timeout SECONDS", "--run-as USER", "--no-network", "--version", "-h,--help",
        "-- COMMAND [ARG ...]", "Exit status", "125"})
    CHECK_THAT(help.out, Contains(option));
}

TEST_CASE("cli: --version prints the project's version on both binaries", "[cli]") {
  testenv::TempDir tmp;
  const std::string version = project_version();
  auto venvs = run_split({kVenvs, "--version"}, tmp.path());
  CHECK(venvs.status == 0);
  CHECK(venvs.out == "clsi-venvs " + version + "\n");
  auto runner = run_split({kRunner, "--version"}, tmp.path());
  CHECK(runner.status == 0);
  CHECK_THAT(runner.out, Contains("clsi-runner " + version + " (plugin ABI 1."));
}

// ---------------------------------------------------------------------------
// Usage errors

TEST_CASE("cli: clsi-venvs usage errors exit 2 and say what is wrong", "[cli]") {
  CliWorld w;
  struct Case {
    std::vector<std::string> argv;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{kVenvs}, "subcommand"},
      {{kVenvs, "frobnicate", "--config", w.config}, "frobnicate"},
      {{kVenvs, "--config", w.config, "list"}, "--config"},
      {{kVenvs, "list"}, "--config"},
      {w.venvs_argv("list", {"--bogus"}), "unknown option --bogus"},
      {w.venvs_argv("list", {"--bogus=1"}), "unknown option --bogus"},
      {w.venvs_argv("list", {"extra"}), "'extra'"},
      // An option of another command is an error, never ignored.
      {w.venvs_argv("list", {"--dry-run"}), "--dry-run is an option of gc, not of list"},
      {w.venvs_argv("list", {"--prometheus"}), "--prometheus is an option of stats"},
      {w.venvs_argv("stats", {"--max-total-mb", "5"}), "--max-total-mb is an option of gc"},
      {w.venvs_argv("gc", {"--prometheus"}), "--prometheus is an option of stats"},
      {w.venvs_argv("remove", {"--dry-run", kKeyA}), "--dry-run is an option of gc"},
      {{kVenvs, "list", "--dry-run"}, "--dry-run is an option of gc"},
      // Missing and invalid values.
      {w.venvs_argv("gc", {"--max-total-mb"}), "--max-total-mb"},
      {w.venvs_argv("gc", {"--max-total-mb", "lots"}), "--max-total-mb"},
      {w.venvs_argv("gc", {"--max-total-mb", "-3"}), "--max-total-mb"},
      {w.venvs_argv("gc", {"--max-total-mb", "1.5"}), "--max-total-mb"},
      {{kVenvs, "list", "--config"}, "--config"},
      {w.venvs_argv("warm", {}), "FILE"},
      {w.venvs_argv("remove", {}), "KEY"},
      {w.venvs_argv("remove", {kKeyA, kKeyB}), "'" + kKeyB + "'"},
      {w.venvs_argv("stats", {"--json", "--prometheus"}), "excludes"},
      {w.venvs_argv("list", {"--venvs-dir", "relative/dir"}), "--venvs-dir"},
  };
  for (const auto& c : cases) {
    std::string line;
    for (const auto& a : c.argv)
      line += a + " ";
    INFO(line);
    auto r = run_split(c.argv, w.tmp.path());
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Contains(c.says));
    CHECK_THAT(r.err, Contains("clsi-venvs"));
    CHECK(r.out.empty());
  }
}

TEST_CASE("cli: clsi-runner usage errors exit 125 and say what is wrong", "[cli]") {
  testenv::TempDir tmp;
  const std::string dir = tmp / "compile";
  REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
  struct Case {
    std::vector<std::string> argv;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{kRunner, "--compile-dir", dir, "--bogus", "--", "true"}, "unknown option --bogus"},
      {{kRunner, "--bogus", "--", "true"}, "unknown option --bogus"},
      {{kRunner, "--compile-dir", dir, "true"}, "COMMAND and its arguments go after --"},
      {{kRunner, "--compile-dir", dir}, "no COMMAND after --"},
      {{kRunner, "--compile-dir", dir, "--"}, "no COMMAND after --"},
      {{kRunner, "--", "true"}, "--compile-dir is required"},
      {{kRunner, "--compile-dir"}, "--compile-dir"},
      {{kRunner, "--compile-dir", dir, "--timeout", "soon", "--", "true"}, "--timeout"},
      {{kRunner, "--compile-dir", dir, "--timeout", "0", "--", "true"}, "--timeout"},
      {{kRunner, "--compile-dir", dir, "--run-as", "", "--", "true"}, "--run-as"},
      {{kRunner, "--compile-dir", dir, "--plugin-config", "x.yaml", "--", "true"},
       "follows no --plugin"},
      {{kRunner, "--compile-dir", dir, "--plugin", "x.so", "--", "true"},
       "--plugin-config is required with --plugin"},
  };
  for (const auto& c : cases) {
    std::string line;
    for (const auto& a : c.argv)
      line += a + " ";
    INFO(line);
    auto r = run_split(c.argv, tmp.path());
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.status == 125);
    CHECK_THAT(r.err, Contains(c.says));
  }
  CHECK_FALSE(testenv::exists(dir + "/output.log"));  // nothing ran
  // What follows -- is the command's, even when it looks like an option.
  auto r = run_split({kRunner, "--compile-dir", dir, "--", "sh", "-c", "echo --plugin x --help"},
                     tmp.path());
  CHECK(r.status == 0);
  CHECK_THAT(testenv::read_file(dir + "/output.log"), Contains("--plugin x --help"));
}

// ---------------------------------------------------------------------------
// --json

TEST_CASE("cli: list --json and stats --json parse, with the documented fields", "[cli][json]") {
  CliWorld w;
  w.add_complete(kKeyA, {"alpha==1.0", "beta==2.1"});
  w.add_unfinished(kKeyB);
  auto list = run_split(w.venvs_argv("list", {"--json"}), w.tmp.path());
  INFO(list.out << list.err);
  REQUIRE(list.status == 0);
  auto envs = json::parse(list.out);
  REQUIRE(envs.is_array());
  REQUIRE(envs.size() == 2);
  std::map<std::string, json> by_key;
  for (const auto& e : envs)
    by_key[e.at("key").get<std::string>()] = e;
  REQUIRE(by_key.count(kKeyA) == 1);
  const auto& a = by_key[kKeyA];
  CHECK(a.at("state") == "complete");
  CHECK(a.at("requirements") == json::array({"alpha==1.0", "beta==2.1"}));
  CHECK(a.at("installed").is_array());
  CHECK(a.at("built_at") == "2023-11-14T22:13:20Z");
  CHECK(a.at("build_seconds") == 1.5);
  CHECK(a.at("size_bytes").is_number_integer());
  CHECK(a.at("last_used").is_string());
  CHECK(a.at("path") == w.store.env_dir(kKeyA));
  CHECK(by_key.at(kKeyB).at("state") == "unfinished");

  auto stats = run_split(w.venvs_argv("stats", {"--json"}), w.tmp.path());
  INFO(stats.out << stats.err);
  REQUIRE(stats.status == 0);
  // The counters are the service's (none ran here); the store is measured.
  auto s = json::parse(stats.out);
  REQUIRE(s.is_object());
  for (const char* k : {"hits", "misses", "builds", "evictions", "venvs", "store_bytes"}) {
    INFO(k);
    CHECK(s.at(k).is_number_integer());
  }
  CHECK(s.at("hits") == 0);
  CHECK(s.at("venvs") == 1);

  // A store with nothing in it: an empty array.
  CliWorld empty;
  auto none = run_split(empty.venvs_argv("list", {"--json"}), empty.tmp.path());
  CHECK(none.status == 0);
  CHECK(json::parse(none.out) == json::array());
  // No store at all (a wrong venvs_dir, a volume not mounted) is not an empty one.
  auto absent = run_split(
      empty.venvs_argv("list", {"--json", "--venvs-dir", empty.tmp / "nowhere"}), empty.tmp.path());
  INFO(absent.out << absent.err);
  CHECK(absent.status == 1);
  CHECK(json::parse(absent.out).at("ok") == false);
  CHECK_THAT(absent.err, Contains(empty.tmp / "nowhere/envs") && Contains("No such file"));
}

TEST_CASE("cli: gc --json and remove --json parse, a failure is JSON too, and exits 1",
          "[cli][json]") {
  CliWorld w;
  w.add_complete(kKeyA, {"alpha==1.0"});
  w.add_unfinished(kKeyB);

  auto dry =
      run_split(w.venvs_argv("gc", {"--json", "--dry-run", "--max-total-mb", "0"}), w.tmp.path());
  INFO(dry.out << dry.err);
  REQUIRE(dry.status == 0);
  auto d = json::parse(dry.out);
  CHECK(d.at("command") == "gc");
  CHECK(d.at("ok") == true);
  CHECK(d.at("dry_run") == true);
  CHECK(d.at("budget_bytes") == 0);
  CHECK(d.at("removed").size() == 2);
  CHECK(d.at("failed") == json::array());
  CHECK(d.at("lines").is_array());
  for (const char* k : {"total_before_bytes", "total_after_bytes", "freed_bytes"})
    CHECK(d.at(k).is_number_integer());
  CHECK(testenv::exists(w.store.env_dir(kKeyA)));

  auto gc = run_split(w.venvs_argv("gc", {"--json"}), w.tmp.path());  // the default budget
  INFO(gc.out << gc.err);
  REQUIRE(gc.status == 0);
  auto g = json::parse(gc.out);
  CHECK(g.at("ok") == true);
  CHECK(g.at("dry_run") == false);
  CHECK(g.at("removed") == json::array({kKeyB}));  // the leftover, not the complete venv
  CHECK_FALSE(testenv::exists(w.store.env_dir(kKeyB)));

  auto removed = run_split(w.venvs_argv("remove", {"--json", kKeyA.substr(0, 12)}), w.tmp.path());
  INFO(removed.out << removed.err);
  REQUIRE(removed.status == 0);
  auto r = json::parse(removed.out);
  CHECK(r.at("ok") == true);
  CHECK(r.at("removed") == kKeyA);
  CHECK_FALSE(testenv::exists(w.store.env_dir(kKeyA)));

  auto missing = run_split(w.venvs_argv("remove", {"--json", kKeyA.substr(0, 12)}), w.tmp.path());
  INFO(missing.out << missing.err);
  CHECK(missing.status == 1);
  auto m = json::parse(missing.out);
  CHECK(m.at("command") == "remove");
  CHECK(m.at("ok") == false);
  CHECK_THAT(m.at("error").get<std::string>(), Contains("no environment"));
  CHECK_THAT(missing.err, Contains("no environment"));
}

TEST_CASE("cli: warm --json: the answer on stdout, also when the service is down", "[cli][json]") {
  CliWorld w;
  testenv::write_file(w.tmp / "requirements.txt", "alpha==1.0\n");
  auto r = run_split(w.venvs_argv("warm", {"--json", w.tmp / "requirements.txt"}), w.tmp.path());
  INFO(r.out << r.err);
  CHECK(r.status == 1);
  auto j = json::parse(r.out);
  CHECK(j.at("command") == "warm");
  CHECK(j.at("ok") == false);
  CHECK_THAT(j.at("error").get<std::string>(), Contains("unavailable"));

  testenv::write_file(w.tmp / "bad.txt", "alpha==1.0\n--index-url http://evil/simple\n");
  auto bad = run_split(w.venvs_argv("warm", {"--json", w.tmp / "bad.txt"}), w.tmp.path());
  INFO(bad.out << bad.err);
  CHECK(bad.status == 1);
  auto b = json::parse(bad.out);
  CHECK(b.at("ok") == false);
  REQUIRE(b.at("details").is_array());
  CHECK_THAT(b.at("details").at(0).get<std::string>(), Contains("./bad.txt:2: refused"));
}

TEST_CASE("cli: serve --json writes its log as one JSON object per line", "[cli][json]") {
  CliWorld w;
  const std::string log = w.tmp / "service.log";
  {
    testenv::ServiceProcess service(w.config, w.socket, log, {},
                                    {"/bin/sh", "-c", "exec \"$0\" \"$@\" --json"});
    CHECK(service.stop() == 0);
  }
  auto text = testenv::read_file(log);
  INFO(text);
  std::istringstream lines(text);
  std::string line;
  int n = 0;
  bool listening = false;
  while (std::getline(lines, line)) {
    INFO(line);
    auto j = json::parse(line);  // throws (fails the test) on a line that is not JSON
    CHECK(j.at("time").is_string());
    CHECK(j.at("level").is_string());
    CHECK(j.at("message").is_string());
    listening = listening || j.at("message").get<std::string>().find("listening on") == 0;
    ++n;
  }
  CHECK(n >= 2);
  CHECK(listening);
}

// ---------------------------------------------------------------------------
// Exit status 1: something asked for did not happen

TEST_CASE("cli: gc that cannot remove a venv exits 1 and says which", "[cli][gc]") {
  REQUIRE_ROOT();
  CliWorld w;
  testenv::SystemUser owner("cli", w.tmp / "home-cli");
  ::chmod(w.tmp.path().c_str(), 0755);  // the owner may traverse to the store
  ::chmod(w.config.c_str(), 0644);
  owner.own(w.venvs);
  // A leftover the owner cannot move: a directory of root's, which moving to
  // another parent (trash/) needs write permission on. Real permissions, as
  // a volume's quirks or an operator's cp -a as root would leave it.
  w.add_unfinished(kKeyB);
  REQUIRE(::chown(w.store.env_dir(kKeyB).c_str(), 0, 0) == 0);

  auto as_owner = [&](const std::vector<std::string>& argv) {
    auto a = owner.as();
    a.insert(a.end(), argv.begin(), argv.end());
    return run_split(a, w.tmp.path());
  };
  auto gc = as_owner(w.venvs_argv("gc", {"--max-total-mb", "0"}));
  INFO(gc.out << gc.err);
  CHECK(gc.status == 1);
  CHECK_THAT(gc.out, Contains("could not remove " + kKeyB.substr(0, 12)));
  CHECK_THAT(gc.err, Contains("were not"));
  CHECK(testenv::exists(w.store.env_dir(kKeyB)));

  auto js = as_owner(w.venvs_argv("gc", {"--json"}));
  INFO(js.out << js.err);
  CHECK(js.status == 1);
  auto j = json::parse(js.out);
  CHECK(j.at("ok") == false);
  REQUIRE(j.at("failed").size() == 1);
  CHECK_THAT(j.at("failed").at(0).get<std::string>(), Contains(kKeyB.substr(0, 12)));

  auto rm = as_owner(w.venvs_argv("remove", {kKeyB}));
  INFO(rm.out << rm.err);
  CHECK(rm.status == 1);
  CHECK_THAT(rm.err, Contains("cannot move"));

  // Anyone but the owner: gc and remove refuse, exit 1, and say why.
  testenv::SystemUser other("clo", w.tmp / "home-clo");
  for (const auto& argv : {w.venvs_argv("gc", {"--json"}), w.venvs_argv("remove", {kKeyB})}) {
    auto a = other.as();
    a.insert(a.end(), argv.begin(), argv.end());
    auto r = run_split(a, w.tmp.path());
    INFO(r.out << r.err);
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Contains("store's owner"));
  }
  CHECK(testenv::exists(w.store.env_dir(kKeyB)));
}

// ---------------------------------------------------------------------------
// Configuration errors, through both programs

TEST_CASE("cli: a configuration without a python_venv section is an error, not the defaults",
          "[cli][config]") {
  testenv::TempDir tmp;
  const std::string config = tmp / "plugin.yaml";
  testenv::write_file(config, "pythonvenv:\n  enabled: true\nother_plugin:\n  x: 1\n");
  auto list = run_split({kVenvs, "list", "--config", config}, tmp.path());
  INFO(list.err);
  CHECK(list.status == 2);
  CHECK_THAT(list.err, Contains(config));
  CHECK_THAT(list.err, Contains("no python_venv section"));
  CHECK_THAT(list.err, Contains("pythonvenv, other_plugin"));
  CHECK_THAT(list.err, Contains("did you mean python_venv instead of pythonvenv"));

  auto js = run_split({kVenvs, "list", "--json", "--config", config}, tmp.path());
  CHECK(js.status == 2);
  CHECK_THAT(json::parse(js.out).at("error").get<std::string>(),
             Contains("no python_venv section"));

  // The plugin refuses to start, and the host says why: the compile does
  // not run with the feature silently off.
  const std::string dir = tmp / "compile";
  REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
  auto runner = run_split({kRunner, "--plugin", CLSI_PLUGIN_PATH, "--plugin-config", config,
                           "--compile-dir", dir, "--", "true"},
                          tmp.path());
  INFO(runner.err);
  CHECK(runner.status == 125);
  CHECK_THAT(runner.err, Contains("did you mean python_venv instead of pythonvenv"));
  CHECK_THAT(runner.err, Contains("failed to start"));
}

TEST_CASE("cli: a configuration file that cannot be read says why", "[cli][config]") {
  testenv::TempDir tmp;
  auto missing = run_split({kVenvs, "stats", "--config", tmp / "absent.yaml"}, tmp.path());
  CHECK(missing.status == 2);
  CHECK_THAT(missing.err, Contains(tmp / "absent.yaml") && Contains("no such file"));

  auto directory = run_split({kVenvs, "stats", "--config", tmp.path()}, tmp.path());
  CHECK(directory.status == 2);
  CHECK_THAT(directory.err, Contains("is a directory"));

  if (::geteuid() != 0) return;
  // Unreadable: root reads any file, so a real second user tries.
  testenv::SystemUser user("clr", tmp / "home-clr");
  ::chmod(tmp.path().c_str(), 0755);
  const std::string secret = tmp / "secret.yaml";
  testenv::write_plugin_yaml(secret, {"enabled: false"});
  ::chmod(secret.c_str(), 0600);
  auto a = user.as();
  a.insert(a.end(), {kVenvs, "stats", "--config", secret});
  auto r = run_split(a, tmp.path());
  INFO(r.err);
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains(secret) && Contains("Permission denied") && Contains("mode 0600"));
}

TEST_CASE("cli: an invalid environment override names the variable", "[cli][config]") {
  CliWorld w;
  auto dir = run_split(w.venvs_argv("list", {}), w.tmp.path(), {{"PYTHON_VENVS_DIR", "venvs"}});
  CHECK(dir.status == 2);
  CHECK_THAT(dir.err, Contains("PYTHON_VENVS_DIR"));
  auto enabled = run_split(w.venvs_argv("list", {}), w.tmp.path(),
                           {{"OVERLEAF_ENABLE_PROJECT_PYTHON_VENV", "maybe"}});
  CHECK(enabled.status == 2);
  CHECK_THAT(enabled.err, Contains("OVERLEAF_ENABLE_PROJECT_PYTHON_VENV") && Contains("maybe"));
}

// ---------------------------------------------------------------------------
// clsi-runner's output.log

TEST_CASE("cli: clsi-runner appends to output.log, never truncates it", "[cli][runner]") {
  testenv::TempDir tmp;
  const std::string dir = tmp / "compile";
  REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
  testenv::write_file(dir + "/output.log", "a line from before\n");
  auto first = testenv::run({kRunner, "--compile-dir", dir, "--", "echo", "first compile"});
  CHECK(first.status == 0);
  auto second = testenv::run({kRunner, "--compile-dir", dir, "--", "echo", "second compile"});
  CHECK(second.status == 0);
  CHECK(testenv::read_file(dir + "/output.log") ==
        "a line from before\nfirst compile\nsecond compile\n");
}
