// The build service's metrics: counters it keeps in memory and persists in
// the store (metrics.json), so that a restart carries on from where it was,
// gauges of its queue and of the store, and their Prometheus text
// exposition (version 0.0.4), served over HTTP (http_metrics.hpp) and
// written as a node-exporter textfile. docs/deployment.md lists every series.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "eviction.hpp"
#include "expected.hpp"
#include "protocol.hpp"

namespace clsi::venv::metrics {

// Upper bounds of the build-duration histogram, in seconds (+Inf implied).
inline constexpr double kBuildBuckets[] = {1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600};
inline constexpr std::size_t kBucketCount = sizeof kBuildBuckets / sizeof kBuildBuckets[0];
// Why a build failed: the requirements' fault, or the service's.
inline constexpr const char* kFailureClasses[] = {"requirements", "service"};
// What was refused: a compile's requirements file (the plugin reports it), a
// peer not in allowed_uids/gids, a build for want of disk, a full service, a
// malformed request.
inline constexpr const char* kRefusalReasons[] = {"requirements", "peer", "low_disk", "busy",
                                                  "bad_request"};

struct Counters {
  std::int64_t since = 0;  // unix seconds: when these counters started
  std::uint64_t hits = 0, misses = 0, builds = 0, gated = 0, evictions = 0, gc_runs = 0;
  std::map<std::string, std::uint64_t> build_failures;  // by kFailureClasses
  std::map<std::string, std::uint64_t> fallbacks;       // by protocol::fallback_reason
  std::map<std::string, std::uint64_t> refusals;        // by kRefusalReasons
  std::int64_t last_gc = 0;                             // unix seconds; 0: never
  std::vector<std::uint64_t> buckets = std::vector<std::uint64_t>(kBucketCount);  // not cumulative
  double build_seconds_sum = 0;
  std::uint64_t build_count = 0;
};

// Thread-safe.
class Registry {
 public:
  Registry();
  void hit();
  void miss();
  void built(double seconds);
  void build_failed(protocol::Cause cause);
  // What a compile reported (hit, fallback, refused, gated); ready counts nothing.
  void outcome(protocol::Outcome outcome);
  void refused(std::string_view reason);
  void evicted(std::size_t venvs);
  void gc_ran(std::int64_t at);
  [[nodiscard]] Counters snapshot() const;

  // metrics.json in the store. A missing file starts from zero; one that does
  // not parse is an error (and the counters start from zero).
  Expected<bool> load(const std::string& path);
  [[nodiscard]] Expected<bool> save(const std::string& path) const;

 private:
  mutable std::mutex mu_;
  Counters c_;
};

std::string to_json(const Counters& c);
std::optional<Counters> from_json(const std::string& text);

// What only a running service knows; nullopt fields are left out.
struct Gauges {
  std::optional<int> running, queued;
  std::int64_t budget_bytes = 0;
  std::int64_t pip_cache_max_bytes = 0;
  std::int64_t min_free_bytes = 0;
  std::optional<std::int64_t> free_bytes;
  std::optional<std::int64_t> start_time;  // the service's, unix seconds
};

// The exposition text: every series, each family with HELP and TYPE.
std::string render(const Counters& c, const Gauges& g, const StoreUsage& store);

// `clsi-venvs stats`: the counters the service persisted, the store as it is
// now, the queue when the service answers. `format`: "text", "json" or
// "prometheus". 1, with the reason on `err`, when the store cannot be read.
int run_stats(const Config& config, const std::string& format, std::ostream& out,
              std::ostream& err);

}  // namespace clsi::venv::metrics
