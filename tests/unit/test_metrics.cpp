// The pieces of issue 13's operations, alone: the operator log's lines, the
// counters and their exposition, the HTTP request parser and server, the
// duration parser, the store's measurement, and lock files deleted under
// their lock.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>

#include "eviction.hpp"
#include "http_metrics.hpp"
#include "lock.hpp"
#include "metrics.hpp"
#include "oplog.hpp"
#include "test_env.hpp"

using Catch::Contains;
using namespace clsi::venv;

TEST_CASE("oplog: one JSON object per line, every field present", "[metrics][oplog]") {
  oplog::Entry e;  // its fields are views: what they name must outlive it
  const std::string key(64, 'a');
  e.level = oplog::Level::kWarning;
  e.event = "fallback";
  e.key = key;
  e.duration_s = 0.25;
  e.reason = "service_unavailable";
  e.message = "line one\nline two \xff";  // a newline and a byte that is not UTF-8
  const std::string line = oplog::line(e);
  CHECK(line.find('\n') == std::string::npos);
  auto j = nlohmann::json::parse(line);
  for (const char* f : {"time", "level", "source", "event", "compile_id", "project_id", "user_id",
                        "key", "duration_s", "reason", "message"})
    CHECK(j.contains(f));
  CHECK(j["level"] == "warning");
  // UTC, to the millisecond: what gmtime says of now, give or take the test.
  const std::string time = j["time"].get<std::string>();
  REQUIRE(time.size() == 24);
  CHECK(time.substr(19, 1) == ".");
  CHECK(time.back() == 'Z');
  std::tm tm{};
  REQUIRE(::strptime(time.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) != nullptr);
  CHECK(std::abs(::timegm(&tm) - std::time(nullptr)) <= 2);
  CHECK(j["compile_id"].is_null());
  CHECK(j["duration_s"] == 0.25);
  CHECK(j["reason"] == "service_unavailable");
}

TEST_CASE("metrics: counters round-trip through metrics.json, unknown labels are dropped",
          "[metrics]") {
  metrics::Registry r;
  r.hit();
  r.miss();
  r.built(3.2);
  r.built(700);
  r.build_failed(protocol::Cause::kRequirements);
  r.outcome(protocol::Outcome::kGated);
  r.outcome(protocol::Outcome::kRefused);
  r.outcome(protocol::Outcome::kDeadline);
  r.refused("low_disk");
  r.refused("no-such-reason");
  testenv::TempDir tmp;
  REQUIRE(r.save(tmp / "metrics.json"));
  metrics::Registry back;
  REQUIRE(back.load(tmp / "metrics.json"));
  auto c = back.snapshot();
  CHECK(c.hits == 1);
  CHECK(c.builds == 2);
  CHECK(c.build_count == 2);
  CHECK(c.buckets[2] == 1);  // 3.2 s: le 5
  CHECK(c.build_seconds_sum == Approx(703.2));
  CHECK(c.build_failures["requirements"] == 1);
  CHECK(c.fallbacks["deadline"] == 1);
  CHECK(c.refusals["requirements"] == 1);
  CHECK(c.refusals["low_disk"] == 1);
  CHECK(c.refusals.count("no-such-reason") == 0);
  CHECK(c.gated == 1);
  testenv::write_file(tmp / "broken.json", "{not json");
  metrics::Registry broken;
  CHECK_FALSE(broken.load(tmp / "broken.json"));
  CHECK(broken.snapshot().hits == 0);
}

TEST_CASE("metrics: the exposition has a histogram with cumulative buckets", "[metrics]") {
  metrics::Counters c;
  c.buckets[0] = 2;   // <= 1 s
  c.buckets[3] = 1;   // <= 10 s
  c.build_count = 4;  // one over the last bound
  c.build_seconds_sum = 1000.5;
  StoreUsage u;
  u.total_bytes = 4096;
  u.part_bytes["pip_cache"] = 1024;
  metrics::Gauges g;
  g.running = 1;
  g.queued = 0;
  auto text = metrics::render(c, g, u);
  CHECK_THAT(text, Contains("# TYPE clsi_venv_build_duration_seconds histogram\n"));
  CHECK_THAT(text, Contains("clsi_venv_build_duration_seconds_bucket{le=\"1\"} 2\n"));
  CHECK_THAT(text, Contains("clsi_venv_build_duration_seconds_bucket{le=\"2.5\"} 2\n"));
  CHECK_THAT(text, Contains("clsi_venv_build_duration_seconds_bucket{le=\"10\"} 3\n"));
  CHECK_THAT(text, Contains("clsi_venv_build_duration_seconds_bucket{le=\"600\"} 3\n"));
  CHECK_THAT(text, Contains("clsi_venv_build_duration_seconds_bucket{le=\"+Inf\"} 4\n"));
  CHECK_THAT(text, Contains("clsi_venv_build_duration_seconds_sum 1000.5\n"));
  CHECK_THAT(text, Contains("clsi_venv_pip_cache_bytes 1024\n"));
  CHECK_THAT(text, Contains("clsi_venv_builds_running 1\n"));
  CHECK_THAT(text, !Contains("summary"));
}

TEST_CASE("http: requests are parsed strictly", "[metrics][http]") {
  CHECK(parse_http_request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").error == 0);
  CHECK(parse_http_request("GET /metrics?x=1 HTTP/1.0\r\n\r\n").error == 0);
  CHECK(parse_http_request("HEAD /metrics HTTP/1.1\r\n\r\n").head);
  CHECK(parse_http_request("GET / HTTP/1.1\r\n\r\n").error == 404);
  CHECK(parse_http_request("DELETE /metrics HTTP/1.1\r\n\r\n").error == 405);
  CHECK(parse_http_request("GET /metrics\r\n\r\n").error == 400);
  CHECK(parse_http_request("").error == 400);
  CHECK(parse_http_request(std::string("\0\0\0\r\n", 5)).error == 400);
}

TEST_CASE("http: the server answers, bounds a slow or huge request, and survives garbage",
          "[metrics][http]") {
  CHECK_FALSE(MetricsHttpServer::listen("localhost:1"));  // numeric addresses only
  CHECK_FALSE(MetricsHttpServer::listen("127.0.0.1:99999"));
  auto server = MetricsHttpServer::listen("127.0.0.1:0");
  REQUIRE(server);
  const std::string address = server->address();
  const int port = std::stoi(address.substr(address.rfind(':') + 1));
  std::atomic<bool> stop{false};
  std::thread serving([&] {
    while (!stop) {
      pollfd p{server->fd(), POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) server->serve_one([] { return HttpResponse{200, "metric 1\n"}; });
    }
  });
  auto ask = [&](const std::string& request, bool close_early = false) {
    clsi::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    (void)!::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL);
    if (close_early) return std::string();
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0)
      out.append(buf, static_cast<std::size_t>(n));
    return out;
  };
  CHECK_THAT(ask("GET /metrics HTTP/1.1\r\n\r\n"), Contains("200 OK") && Contains("metric 1"));
  CHECK_THAT(ask("HEAD /metrics HTTP/1.1\r\n\r\n"), !Contains("metric 1"));
  CHECK_THAT(ask(std::string(20000, 'x')), Contains("431"));
  ask("GET /metr", true);  // a client that goes away mid-request
  auto started = std::chrono::steady_clock::now();
  CHECK_THAT(ask("GET /metrics HTTP/1.1\r\n"), Contains("408"));  // never finishes its headers
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
  CHECK_THAT(ask("GET /metrics HTTP/1.1\r\n\r\n"), Contains("200 OK"));
  stop = true;
  serving.join();
}

TEST_CASE("durations: 30d, 12h, 90m, 45s and plain seconds", "[metrics][gc]") {
  CHECK(*parse_duration("30d") == 30 * 86400);
  CHECK(*parse_duration("12h") == 12 * 3600);
  CHECK(*parse_duration("90m") == 5400);
  CHECK(*parse_duration("45s") == 45);
  CHECK(*parse_duration("2w") == 14 * 86400);
  CHECK(*parse_duration("3600") == 3600);
  CHECK_FALSE(parse_duration("d"));
  CHECK_FALSE(parse_duration("-1d"));
  CHECK_FALSE(parse_duration("3 days"));
  CHECK_FALSE(parse_duration("99999999999999999999d"));
}

TEST_CASE("store: a store that is not there cannot be measured, one that is, all of it",
          "[metrics][store]") {
  testenv::TempDir tmp;
  CHECK_FALSE(measure_store(Store(tmp / "nothing")));
  ::mkdir((tmp / "empty").c_str(), 0755);  // an empty mount point: not a store
  auto empty = measure_store(Store(tmp / "empty"));
  REQUIRE_FALSE(empty);
  CHECK_THAT(empty.error(), Contains("cannot read the store"));
  Store store(tmp / "store");
  REQUIRE(store.ensure_layout());
  testenv::write_file(store.root() + "/events.log", std::string(10000, 'e'));
  testenv::write_file(store.pip_cache_dir() + "/http/a/b/entry", std::string(20000, 'p'));
  testenv::write_file(store.logs_dir() + "/" + std::string(64, 'a') + ".log", "log\n");
  auto u = measure_store(store);
  REQUIRE(u);
  CHECK(u->total_bytes == testenv::du_bytes(store.root()));
  CHECK(u->part_bytes["events"] >= 10000);
  CHECK(u->part_bytes["pip_cache"] >= 20000);
  CHECK(u->part_bytes["logs"] > 0);
}

TEST_CASE("locks: a lock file deleted under its lock is stale to whoever opened it before",
          "[metrics][locks]") {
  testenv::TempDir tmp;
  const std::string path = tmp / "k.lock";
  auto evictor = KeyLock::open(path, true);
  auto early = KeyLock::open(path, false);  // a build that opened it, not yet locked
  REQUIRE(evictor);
  REQUIRE(early);
  REQUIRE(evictor->try_lock(KeyLock::Mode::kExclusive));
  REQUIRE(::unlink(path.c_str()) == 0);
  evictor->unlock();
  CHECK_FALSE(early->try_lock(KeyLock::Mode::kExclusive));
  CHECK(early->stale());
  auto fresh = KeyLock::open(path, true);
  REQUIRE(fresh);
  CHECK(fresh->try_lock(KeyLock::Mode::kExclusive));
  CHECK_FALSE(fresh->stale());
}

TEST_CASE(
    "locks: lock_until tries once when its deadline has passed, waits for a release, and "
    "gives up at once on a stale file",
    "[metrics][locks]") {
  using Clock = std::chrono::steady_clock;
  testenv::TempDir tmp;
  const std::string path = tmp / "k.lock";
  auto builder = KeyLock::open(path, true);
  auto lease = KeyLock::open_for_lease(path);
  REQUIRE(builder);
  REQUIRE(lease);
  REQUIRE(builder->try_lock(KeyLock::Mode::kExclusive));
  CHECK_FALSE(lease->lock_until(KeyLock::Mode::kShared, Clock::time_point{}));
  CHECK_FALSE(lease->stale());

  std::atomic<bool> released{false};
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    released = true;
    builder->unlock();
  });
  CHECK(lease->lock_until(KeyLock::Mode::kShared, Clock::now() + std::chrono::seconds(30)));
  releaser.join();
  CHECK(released);
  lease->unlock();

  // Deleted under its exclusive lock: waiting longer would not help.
  auto evictor = KeyLock::open(path, false);
  auto early = KeyLock::open_for_lease(path);
  REQUIRE(evictor);
  REQUIRE(early);
  REQUIRE(evictor->try_lock(KeyLock::Mode::kExclusive));
  REQUIRE(::unlink(path.c_str()) == 0);
  evictor->unlock();
  const auto start = Clock::now();
  CHECK_FALSE(early->lock_until(KeyLock::Mode::kShared, start + std::chrono::seconds(30)));
  CHECK(early->stale());
  CHECK(Clock::now() - start < std::chrono::seconds(10));
}
