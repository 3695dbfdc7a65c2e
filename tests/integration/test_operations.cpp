// Operating the store (issue 13, points 4 and 5): the operator log as JSON
// lines from the plugin and the service, the service's metrics read with
// Prometheus' own parser, the whole store within its budget, lock files of
// gone keys, the free-space guard on a real (tmpfs) volume, and rewarm after
// the interpreter changed. Real service, real pip, local indexes.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "venv_world.hpp"

using Catch::Contains;
using nlohmann::json;
using testenv::VenvWorld;

namespace {

const std::string kVenvsTool = std::string(CLSI_BUILD_DIR) + "/bin/clsi-venvs";
// clsi-venvs serve --json: the service's stderr is its operator log, JSON lines.
const std::vector<std::string> kJsonService = {"/bin/sh", "-c", "exec \"$@\" --json", "sh"};
const char* const kFields[] = {"time",       "level",      "source",  "event",
                               "compile_id", "project_id", "user_id", "key",
                               "duration_s", "reason",     "message"};

// The JSON objects of the plugin's lines on clsi-runner's stderr
// ("clsi-runner: python-venv: info: [compile ID] {...}"), with the compile id
// the runner printed.
std::vector<std::pair<std::string, json>> plugin_lines(const std::string& output) {
  std::vector<std::pair<std::string, json>> out;
  std::istringstream in(output);
  std::string line;
  const std::regex prefix(R"(^clsi-runner: python-venv: \w+: (?:\[compile ([^\]]+)\] )?\{)");
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, prefix)) continue;
    out.emplace_back(m[1].str(), json::parse(line.substr(line.find('{'))));
  }
  return out;
}

// `strict`: every line must be a JSON object (the service is quiet).
std::vector<json> service_lines(const VenvWorld& w, bool strict = true) {
  std::vector<json> out;
  std::istringstream in(testenv::read_file(w.tmp / "service.log"));
  std::string line;
  while (std::getline(in, line)) {
    INFO(line);
    auto j = json::parse(line, nullptr, false);
    if (strict) CHECK((!j.is_discarded() && j.is_object()));  // every line of it
    if (!j.is_discarded()) out.push_back(j);
  }
  return out;
}

void check_fields(const json& j) {
  INFO(j.dump());
  for (const char* f : kFields)
    CHECK(j.contains(f));
  CHECK(std::regex_match(j.value("time", ""),
                         std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
}

// Where the service serves /metrics, from the start line of its `nth` start
// (1: the first). The socket answers a moment before that line is written.
std::string metrics_address(const VenvWorld& w, std::size_t nth = 1) {
  for (int i = 0; i < 250; ++i) {
    std::vector<std::string> addresses;
    for (const auto& j : service_lines(w, false)) {
      std::smatch m;
      const std::string msg = j.value("message", "");
      if (j.value("event", "") == "start" &&
          std::regex_search(msg, m, std::regex(R"(metrics on http://([0-9.:]+)/metrics)")))
        addresses.push_back(m[1]);
    }
    if (addresses.size() >= nth) return addresses[nth - 1];
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return {};
}

struct Scrape {
  int status = 0;
  std::string body;
  std::map<std::string, double> samples;  // name{label="v",...} -> value
  std::map<std::string, std::string> types;
};

// GET http://ADDRESS/metrics (or read FILE), parsed with prometheus_client's
// own text parser.
Scrape scrape(const std::string& url_or_file) {
  const char* script = R"PY(
import json, sys, urllib.request, urllib.error
from prometheus_client.parser import text_string_to_metric_families
src = sys.argv[1]
if src.startswith("http://"):
    try:
        r = urllib.request.urlopen(src, timeout=20)
        status, body = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read().decode()
else:
    status, body = 200, open(src).read()
out = {"status": status, "body": body, "samples": {}, "types": {}}
if status == 200:
    for family in text_string_to_metric_families(body):
        out["types"][family.name] = family.type
        for s in family.samples:
            labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
            out["samples"][s.name + ("{" + labels + "}" if labels else "")] = s.value
print(json.dumps(out))
)PY";
  auto r = testenv::run({testenv::helper_python(), "-c", script, url_or_file});
  INFO(r.output);
  REQUIRE(r.status == 0);
  auto j = json::parse(r.output);
  Scrape s;
  s.status = j["status"];
  s.body = j["body"];
  for (auto& [k, v] : j["samples"].items())
    s.samples[k] = v;
  for (auto& [k, v] : j["types"].items())
    s.types[k] = v;
  return s;
}

void set_last_used(const VenvWorld& w, const std::string& key, std::time_t when) {
  timespec times[2] = {{when, 0}, {when, 0}};
  REQUIRE(::utimensat(AT_FDCWD, (w.venvs + "/envs/" + key + ".complete").c_str(), times, 0) == 0);
}

bool is_root() {
  return ::geteuid() == 0;
}

}  // namespace

TEST_CASE("operations: the operator log is JSON lines with the compile's ids",
          "[operations][oplog]") {
  VenvWorld w;
  w.service_prefix = kJsonService;
  w.service_lines = {"metrics_address: off"};
  w.configure();
  const std::string dir = w.project("gamma\n");
  const std::string code = "import gamma; print('RENDER', gamma.MESSAGE)";
  auto first = w.compile(dir, true, code);
  auto second = w.compile(dir, true, code);
  auto gated = w.compile(w.project("gamma\n"), false, "print('RENDER ran')");
  INFO(first);
  INFO(second);
  INFO(gated);
  REQUIRE_THAT(first, Contains("RENDER gamma here"));

  auto a = plugin_lines(first), b = plugin_lines(second), c = plugin_lines(gated);
  REQUIRE(a.size() == 1);
  REQUIRE(b.size() == 1);
  REQUIRE(c.size() == 1);
  for (const auto* lines : {&a, &b, &c}) {
    const auto& [compile_id, j] = lines->front();
    check_fields(j);
    CHECK(j["source"] == "plugin");
    CHECK_FALSE(compile_id.empty());
    CHECK(j["compile_id"] == compile_id);  // the id the host gave the compile
    CHECK(j["user_id"] == "u1");
    CHECK(j["duration_s"].is_number());
  }
  const json& ready = a[0].second;
  const std::string key = w.env_dirs().at(0);
  CHECK(ready["event"] == "ready");
  CHECK(ready["project_id"] == dir);
  CHECK(ready["key"] == key);
  CHECK(b[0].second["event"] == "hit");
  CHECK(b[0].second["key"] == key);
  CHECK(b[0].second["level"] == "info");
  CHECK(c[0].second["event"] == "gated");
  CHECK(c[0].second["key"].is_null());
  CHECK_THAT(c[0].second.value("message", ""), Contains("may not install"));

  // The service's lines: the same fields; its build carries the compile's ids.
  bool queued = false, built = false;
  for (const auto& j : service_lines(w)) {
    check_fields(j);
    CHECK(j["source"] == "service");
    if (j["key"] != key) continue;
    if (j["event"] == "queued" || j["event"] == "built") {
      CHECK(j["compile_id"] == a[0].first);
      CHECK(j["project_id"] == dir);
      CHECK(j["user_id"] == "u1");
    }
    queued = queued || j["event"] == "queued";
    if (j["event"] == "built") {
      built = true;
      CHECK(j["duration_s"].get<double>() > 0);
    }
  }
  CHECK(queued);
  CHECK(built);
}

TEST_CASE("operations: metrics over HTTP and as a textfile, read with Prometheus' parser",
          "[operations][metrics]") {
  VenvWorld w;
  const std::string textfile_dir = w.tmp / "textfile";
  ::mkdir(textfile_dir.c_str(), 0755);
  const std::string textfile = textfile_dir + "/clsi_venvs.prom";
  w.service_prefix = kJsonService;
  w.service_lines = {"metrics_address: 127.0.0.1:0", "metrics_textfile: " + textfile,
                     "metrics_interval_s: 1"};
  w.configure({"retry_failed_after_s: 600"});
  const std::string address = metrics_address(w);
  REQUIRE_FALSE(address.empty());
  const std::string url = "http://" + address + "/metrics";

  // A miss (built, then used), a hit, a failure of the requirements (a
  // fallback), a refused file, a gated compile.
  auto miss = w.compile(w.project("alpha\n"));
  REQUIRE_THAT(miss, Contains("RENDER alpha 2.1"));
  auto hit = w.compile(w.project("alpha\n"));
  REQUIRE_THAT(hit, Contains("reusing environment"));
  auto failed = w.compile(w.project("no-such-package\n"), true, "print('RENDER ran')");
  REQUIRE_THAT(failed, Contains("could not be built"));
  auto refused =
      w.compile(w.project("--index-url http://example.invalid/\ngamma\n"), true, "print(1)");
  REQUIRE_THAT(refused, Contains("refused"));
  auto gated = w.compile(w.project("gamma\n"), false, "print(1)");
  REQUIRE_THAT(gated, Contains("may not install"));

  auto m = scrape(url);
  INFO(m.body);
  REQUIRE(m.status == 200);
  auto& s = m.samples;
  CHECK(s["clsi_venv_cache_hits_total"] == 1);
  CHECK(s["clsi_venv_cache_misses_total"] == 2);
  CHECK(s["clsi_venv_builds_total"] == 1);
  CHECK(s["clsi_venv_build_failures_total{class=\"requirements\"}"] == 1);
  CHECK(s["clsi_venv_build_failures_total{class=\"service\"}"] == 0);
  CHECK(s["clsi_venv_fallbacks_total{reason=\"build_failed\"}"] == 1);
  CHECK(s["clsi_venv_fallbacks_total{reason=\"service_unavailable\"}"] == 0);
  CHECK(s["clsi_venv_refusals_total{reason=\"requirements\"}"] == 1);
  CHECK(s["clsi_venv_gated_compiles_total"] == 1);
  CHECK(s["clsi_venv_builds_running"] == 0);
  CHECK(s["clsi_venv_builds_queued"] == 0);
  CHECK(s["clsi_venv_store_venvs"] == 1);
  // A histogram, aggregatable across hosts (a summary's quantiles are not).
  CHECK(m.types["clsi_venv_build_duration_seconds"] == "histogram");
  CHECK(s["clsi_venv_build_duration_seconds_count"] == 1);
  CHECK(s["clsi_venv_build_duration_seconds_bucket{le=\"+Inf\"}"] == 1);
  CHECK(s["clsi_venv_build_duration_seconds_sum"] > 0);
  // The whole store, as du sees it.
  const double store = s["clsi_venv_store_bytes"];
  const auto du = static_cast<double>(testenv::du_bytes(w.venvs));
  CHECK(std::abs(store - du) <= 16 * 1024);
  CHECK(s["clsi_venv_store_part_bytes{part=\"envs\"}"] > 0);
  CHECK(s.count("clsi_venv_pip_cache_bytes") == 1);

  // The textfile: the same exposition, for a node exporter.
  for (int i = 0;
       i < 100 && testenv::read_file(textfile).find("gated_compiles_total 1") == std::string::npos;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto t = scrape(textfile);
  CHECK(t.samples["clsi_venv_gated_compiles_total"] == 1);
  CHECK(t.samples["clsi_venv_cache_hits_total"] == 1);

  SECTION("a restart goes on counting from where it was") {
    w.start_service();
    auto again = scrape("http://" + metrics_address(w, 2) + "/metrics");
    REQUIRE(again.status == 200);
    CHECK(again.samples["clsi_venv_cache_hits_total"] == 1);
    CHECK(again.samples["clsi_venv_builds_total"] == 1);
    CHECK(again.samples["clsi_venv_build_duration_seconds_count"] == 1);
    CHECK(again.samples["clsi_venv_gated_compiles_total"] == 1);
  }
  SECTION("a store it cannot read is an error, not zeros") {
    const std::string moved = w.venvs + ".moved";  // as an unmounted volume
    REQUIRE(::rename(w.venvs.c_str(), moved.c_str()) == 0);
    auto gone = scrape(url);
    CHECK(gone.status == 503);
    CHECK_THAT(gone.body, Contains("cannot read the store " + w.venvs));
    for (int i = 0; i < 100 && testenv::exists(textfile); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK_FALSE(testenv::exists(textfile));  // no stale numbers left behind
    auto stats = testenv::run({kVenvsTool, "stats", "--config", w.config, "--prometheus"});
    CHECK(stats.status == 1);
    CHECK_THAT(stats.output, Contains("cannot read the store"));
    REQUIRE(::rename(moved.c_str(), w.venvs.c_str()) == 0);
    CHECK(scrape(url).status == 200);
  }
  SECTION("anything but GET /metrics is refused, and garbage does not hurt") {
    auto script = R"PY(
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
def ask(data, close=False):
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(data)
    if close:
        s.close()
        return ""
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    return out.split(b"\r\n", 1)[0].decode()
print(ask(b"GET /other HTTP/1.1\r\n\r\n"))
print(ask(b"POST /metrics HTTP/1.1\r\n\r\n"))
print(ask(b"\x00\xff garbage\r\n\r\n"))
print(ask(b"GET /metrics HTTP/1.1\r\n" + b"X: " + b"y" * 20000 + b"\r\n\r\n"))
print(ask(b"GET /met", close=True))
print(ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
)PY";
    auto r = testenv::run({testenv::helper_python(), "-c", script, address});
    INFO(r.output);
    CHECK_THAT(r.output, Contains("HTTP/1.1 404"));
    CHECK_THAT(r.output, Contains("HTTP/1.1 405"));
    CHECK_THAT(r.output, Contains("HTTP/1.1 400"));
    CHECK_THAT(r.output, Contains("HTTP/1.1 431"));
    CHECK_THAT(r.output, Contains("HTTP/1.1 200"));
    CHECK(scrape(url).status == 200);  // still serving
  }
}

TEST_CASE(
    "operations: the whole store is back within its budget after each of many distinct builds",
    "[operations][budget]") {
  // Distinct packages with incompressible payloads, served over HTTP with
  // PyPI's cache headers, so pip's download cache fills as in production.
  std::string spec = "[";
  const int kSets = 14;
  for (int i = 0; i < kSets; ++i) {
    spec += std::string(i ? "," : "") + R"({"name": "pkg)" + std::to_string(i) +
            R"(", "version": "1.0", "files": {"pkg)" + std::to_string(i) +
            R"(/__init__.py": "X = 1\n"}, "pad_bytes": 250000})";
  }
  spec += "]";
  VenvWorld w(spec);
  const std::string port_file = w.tmp / "index.port";
  clsi::SpawnOptions so;
  so.executable = testenv::helper_python();
  so.args = {std::string(CLSI_SOURCE_DIR) + "/examples/tools/serve_index.py", w.index,
             "--port-file", port_file, "--cache-headers"};
  so.env = {"PATH=/usr/bin:/bin"};
  so.output_fd = 2;
  std::error_code ec;
  auto server = clsi::Child::spawn(so, ec);
  REQUIRE(server);
  for (int i = 0; i < 200 && !testenv::exists(port_file); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const std::string url =
      "http://127.0.0.1:" + std::to_string(std::stoi(testenv::read_file(port_file))) + "/simple/";

  const std::int64_t budget = std::int64_t{3} * 1024 * 1024;
  w.configure(
      {"retry_failed_after_s: 1", "eviction:", "  max_total_mb: 3", "  max_pip_cache_mb: 1"}, url);
  // An old events.log, as a long-running service leaves it: rotated, then dropped.
  std::string old_events;
  while (old_events.size() < 300 * 1024)
    old_events += "1000000000 hit " + std::string(64, 'a') + " 0.000\n";
  testenv::write_file(w.venvs + "/events.log", old_events);

  std::int64_t most = 0, most_cache = 0;
  for (int i = 0; i < kSets; ++i) {
    const std::string name = "pkg" + std::to_string(i);
    auto log = w.compile(w.project(name + "\n"), true,
                         "import " + name + "; print('RENDER', " + name + ".X)");
    INFO(log);
    CHECK_THAT(log, Contains("RENDER 1"));
    if (i % 4 == 3) {  // and now and then a build that fails, remembered for a second
      auto failed = w.compile(w.project("no-such-" + name + "\n"), true, "print(1)");
      CHECK_THAT(failed, Contains("could not be built"));
    }
    // The service evicts once the compile has its answer.
    std::int64_t total = 0;
    testenv::eventually([&] { return (total = testenv::du_bytes(w.venvs)) <= budget; });
    most = std::max(most, total);
    most_cache = std::max(most_cache, testenv::du_bytes(w.venvs + "/cache/pip"));
    INFO("after " << name << ": " << total << " bytes on disk");
    CHECK(total <= budget);
  }
  INFO("most on disk " << most << ", pip cache at most " << most_cache);
  CHECK(most_cache > 512 * 1024);  // pip's cache was used, and counted
  CHECK(w.env_dirs().size() < static_cast<std::size_t>(kSets));  // venvs were evicted

  // Once the failures have expired, a gc leaves nothing of the gone keys.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  auto gc = testenv::run({kVenvsTool, "gc", "--config", w.config});
  INFO(gc.output);
  CHECK(gc.status == 0);
  CHECK(testenv::du_bytes(w.venvs) <= budget);
  const auto envs = w.env_dirs();
  const std::set<std::string> present(envs.begin(), envs.end());
  for (const auto& f : testenv::list_dir(w.venvs + "/logs"))
    CHECK(present.count(f.substr(0, 64)));
  for (const auto& f : testenv::list_dir(w.venvs + "/locks"))
    CHECK(present.count(f.substr(0, 64)));
  CHECK(testenv::list_dir(w.venvs + "/failures").empty());
  CHECK(testenv::read_file(w.venvs + "/events.log").size() < 64 * 1024);
  CHECK(testenv::du_bytes(w.venvs + "/cache/pip") <= 1024 * 1024);
  server->terminate(std::chrono::milliseconds(1000));
}

TEST_CASE("operations: a gone key's lock file is removed only under its exclusive lock",
          "[operations][locks]") {
  VenvWorld w;
  w.configure();
  const std::string code = "import gamma; print('RENDER', gamma.MESSAGE)";
  REQUIRE_THAT(w.compile(w.project("gamma\n"), true, code), Contains("RENDER gamma here"));
  const std::string key = w.env_dirs().at(0);
  const std::string lock = w.venvs + "/locks/" + key + ".lock";
  const std::string log = w.venvs + "/logs/" + key + ".log";
  // The venv goes; its lock file, build log and key-cache entries stay
  // behind (as an eviction before this change left them). The entries are
  // made old enough not to be those of a build still queued.
  std::filesystem::remove_all(w.venvs + "/envs/" + key);
  ::unlink((w.venvs + "/envs/" + key + ".complete").c_str());
  std::vector<std::string> entries;
  for (const auto& f : testenv::list_dir(w.venvs + "/keys")) {
    if (testenv::read_file(w.venvs + "/keys/" + f).substr(0, 64) != key) continue;
    entries.push_back(w.venvs + "/keys/" + f);
    timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
    REQUIRE(::utimensat(AT_FDCWD, entries.back().c_str(), old, 0) == 0);
  }
  REQUIRE_FALSE(entries.empty());
  REQUIRE(testenv::exists(lock));
  REQUIRE(testenv::exists(log));

  // A lease, taken as a compile takes it: gc keeps the lock file and all.
  int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  struct flock fl {};
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  REQUIRE(::fcntl(fd, F_OFD_SETLK, &fl) == 0);
  auto held = testenv::run({kVenvsTool, "gc", "--config", w.config});
  INFO(held.output);
  CHECK_THAT(held.output, Contains("kept the lock files of 1 key(s)"));
  CHECK(testenv::exists(lock));
  CHECK(testenv::exists(log));
  CHECK(testenv::exists(entries[0]));
  ::close(fd);  // the lease ends

  auto freed = testenv::run({kVenvsTool, "gc", "--config", w.config});
  INFO(freed.output);
  CHECK_FALSE(testenv::exists(lock));
  CHECK_FALSE(testenv::exists(log));
  for (const auto& e : entries)
    CHECK_FALSE(testenv::exists(e));
  // The key is built again from nothing, its lock file made anew.
  auto again = w.compile(w.project("gamma\n"), true, code);
  INFO(again);
  CHECK_THAT(again, Contains("RENDER gamma here"));
  CHECK(testenv::exists(lock));
}

TEST_CASE("operations: below eviction.min_free_mb the service makes room, or refuses",
          "[operations][free]") {
  if (!is_root()) {
    WARN("skipped: mounting a tmpfs needs root");
    return;
  }
  VenvWorld w;
  const std::string vol = w.tmp / "vol";
  ::mkdir(vol.c_str(), 0755);
  REQUIRE(testenv::run({"mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", vol}).status == 0);
  struct Unmount {
    VenvWorld& w;
    std::string vol;
    ~Unmount() {
      w.service.reset();
      (void)testenv::run({"umount", "-l", vol});
    }
  } unmount{w, vol};
  w.venvs = vol + "/venvs";
  w.configure({"eviction:", "  min_free_mb: 8", "  max_total_mb: 30"});
  auto free_mb = [&] {
    auto r = testenv::run({"df", "-B1", "--output=avail", vol});
    return std::stoll(r.output.substr(r.output.find('\n') + 1)) / (1024 * 1024);
  };
  auto fill_to = [&](long long mb_free, const std::string& name) {
    long long extra = free_mb() - mb_free;
    REQUIRE(extra > 0);
    REQUIRE(
        testenv::run({"fallocate", "-l", std::to_string(extra) + "M", vol + "/" + name}).status ==
        0);
  };

  REQUIRE_THAT(w.compile(w.project("bulky\n"), true, "print('RENDER ran')"),
               Contains("RENDER ran"));
  const std::string bulky = w.env_dirs().at(0);
  set_last_used(w, bulky, std::time(nullptr) - 3600);
  fill_to(6, "filler-1");  // below min_free_mb; evicting bulky (3 MB) makes room

  auto roomy =
      w.compile(w.project("gamma\n"), true, "import gamma; print('RENDER', gamma.MESSAGE)");
  INFO(roomy);
  CHECK_THAT(roomy, Contains("RENDER gamma here"));
  CHECK_THAT(w.service->log(), Contains("less than eviction.min_free_mb (8 MB)"));
  CHECK_FALSE(testenv::exists(w.venvs + "/envs/" + bulky));

  fill_to(2, "filler-2");  // and now nothing that can go frees enough
  auto refused = w.compile(w.project("alpha\n"), true, "print('RENDER ran')");
  INFO(refused);
  CHECK_THAT(refused, Contains("less than eviction.min_free_mb (8 MB)"));
  CHECK_THAT(refused, Contains("problem of the compile service"));
  CHECK_THAT(refused, Contains("RENDER ran"));
}

TEST_CASE("operations: rewarm rebuilds the venvs used within the window for the new interpreter",
          "[operations][rewarm]") {
  VenvWorld w;
  // A base interpreter whose version string an "image upgrade" changes.
  const std::string wrapper = w.tmp / "python3";
  auto write_wrapper = [&](const std::string& build) {
    testenv::write_file(wrapper,
                        "#!/bin/sh\n"
                        "case \"$3\" in\n"
                        "  'import sys, platform'*)\n"
                        "    /usr/bin/python3 \"$@\" | sed 's/^version=/version=" +
                            build +
                            " /'; exit ;;\n"
                            "esac\n"
                            "exec /usr/bin/python3 \"$@\"\n");
    ::chmod(wrapper.c_str(), 0755);
  };
  write_wrapper("image-1");
  w.configure({"base_python: " + wrapper});
  REQUIRE_THAT(w.compile(w.project("alpha\n")), Contains("RENDER alpha 2.1"));
  REQUIRE_THAT(
      w.compile(w.project("gamma\n"), true, "import gamma; print('RENDER', gamma.MESSAGE)"),
      Contains("RENDER gamma here"));
  REQUIRE_THAT(w.compile(w.project("bulky\n"), true, "print('RENDER ran')"),
               Contains("RENDER ran"));
  REQUIRE(w.env_dirs().size() == 3);
  std::string bulky;
  for (const auto& k : w.env_dirs())
    if (testenv::read_file(w.venvs + "/envs/" + k + ".complete").find("bulky") != std::string::npos)
      bulky = k;
  set_last_used(w, bulky, std::time(nullptr) - 30 * 86400);  // outside the window

  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  write_wrapper("image-2");  // the upgrade: every key changes
  auto r = testenv::run({kVenvsTool, "rewarm", "--config", w.config, "--used-within", "7d"});
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK_THAT(r.output, Contains("2 requirement set(s)"));
  CHECK(testenv::count_occurrences(r.output, ": ready") == 2);
  CHECK(w.env_dirs().size() == 5);

  // The users' next compiles are hits.
  auto alpha = w.compile(w.project("alpha\n"));
  INFO(alpha);
  CHECK_THAT(alpha, Contains("reusing environment"));
  CHECK_THAT(alpha, Contains("RENDER alpha 2.1"));
  auto gamma =
      w.compile(w.project("gamma\n"), true, "import gamma; print('RENDER', gamma.MESSAGE)");
  CHECK_THAT(gamma, Contains("reusing environment"));
  // And a second rewarm finds them current.
  auto again = testenv::run({kVenvsTool, "rewarm", "--config", w.config, "--used-within", "7d"});
  INFO(again.output);
  CHECK(again.status == 0);
  CHECK(testenv::count_occurrences(again.output, ": current") >= 2);
}
