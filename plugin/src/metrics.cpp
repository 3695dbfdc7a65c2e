#include "metrics.hpp"

#include <sys/stat.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "isolation.hpp"
#include "service_client.hpp"
#include "store.hpp"

namespace clsi::venv::metrics {
namespace {

using nlohmann::json;

constexpr int kStateVersion = 1;

void zero_labels(Counters& c) {
  for (const char* k : kFailureClasses)
    c.build_failures[k];
  for (protocol::Outcome o : protocol::kAllOutcomes)
    if (protocol::is_fallback(o)) c.fallbacks[protocol::fallback_reason(o)];
  for (const char* r : kRefusalReasons)
    c.refusals[r];
}

// Label values come from fixed sets: only known keys are kept from a file.
void merge_known(std::map<std::string, std::uint64_t>& into, const json& from) {
  if (!from.is_object()) return;
  for (auto& [k, v] : into) {
    auto it = from.find(k);
    if (it != from.end() && it->is_number_unsigned()) v = it->get<std::uint64_t>();
  }
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  // The shortest text that reads back as the same double ("2.5", not "2.5000000000000000").
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("NaN");
}

class Text {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(const std::string& name, std::uint64_t v, const std::string& labels = {}) {
    out_ += name + labels + ' ' + std::to_string(v) + '\n';
  }
  void sample(const std::string& name, std::int64_t v, const std::string& labels = {}) {
    out_ += name + labels + ' ' + std::to_string(v) + '\n';
  }
  void sample_double(const std::string& name, double v, const std::string& labels = {}) {
    out_ += name + labels + ' ' + number(v) + '\n';
  }
  static std::string label(const char* name, const std::string& value) {
    return std::string("{") + name + "=\"" + value + "\"}";
  }
  [[nodiscard]] const std::string& str() const { return out_; }

 private:
  std::string out_;
};

}  // namespace

Registry::Registry() {
  c_.since = static_cast<std::int64_t>(std::time(nullptr));
  zero_labels(c_);
}

void Registry::hit() {
  std::lock_guard lock(mu_);
  ++c_.hits;
}

void Registry::miss() {
  std::lock_guard lock(mu_);
  ++c_.misses;
}

void Registry::built(double seconds) {
  std::lock_guard lock(mu_);
  ++c_.builds;
  std::size_t i = 0;
  while (i < kBucketCount && seconds > kBuildBuckets[i])
    ++i;
  if (i < kBucketCount) ++c_.buckets[i];
  c_.build_seconds_sum += seconds;
  ++c_.build_count;
}

void Registry::build_failed(protocol::Cause cause) {
  std::lock_guard lock(mu_);
  ++c_.build_failures[cause == protocol::Cause::kRequirements ? "requirements" : "service"];
}

void Registry::outcome(protocol::Outcome o) {
  std::lock_guard lock(mu_);
  if (o == protocol::Outcome::kHit) ++c_.hits;
  if (o == protocol::Outcome::kGated) ++c_.gated;
  if (o == protocol::Outcome::kRefused) ++c_.refusals["requirements"];
  if (protocol::is_fallback(o)) ++c_.fallbacks[protocol::fallback_reason(o)];
}

void Registry::refused(std::string_view reason) {
  std::lock_guard lock(mu_);
  auto it = c_.refusals.find(std::string(reason));
  if (it != c_.refusals.end()) ++it->second;
}

void Registry::evicted(std::size_t venvs) {
  std::lock_guard lock(mu_);
  c_.evictions += venvs;
}

void Registry::gc_ran(std::int64_t at) {
  std::lock_guard lock(mu_);
  ++c_.gc_runs;
  c_.last_gc = at;
}

Counters Registry::snapshot() const {
  std::lock_guard lock(mu_);
  return c_;
}

std::string to_json(const Counters& c) {
  json j = {{"version", kStateVersion},
            {"since", c.since},
            {"hits", c.hits},
            {"misses", c.misses},
            {"builds", c.builds},
            {"gated", c.gated},
            {"evictions", c.evictions},
            {"gc_runs", c.gc_runs},
            {"last_gc", c.last_gc},
            {"build_failures", c.build_failures},
            {"fallbacks", c.fallbacks},
            {"refusals", c.refusals},
            {"build_seconds",
             {{"le", kBuildBuckets},
              {"buckets", c.buckets},
              {"sum", c.build_seconds_sum},
              {"count", c.build_count}}}};
  return j.dump(1) + "\n";
}

std::optional<Counters> from_json(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("version", 0) != kStateVersion)
    return std::nullopt;
  Counters c;
  zero_labels(c);
  auto u64 = [&](const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
  };
  auto i64 = [&](const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : 0;
  };
  c.since = i64("since");
  c.hits = u64("hits");
  c.misses = u64("misses");
  c.builds = u64("builds");
  c.gated = u64("gated");
  c.evictions = u64("evictions");
  c.gc_runs = u64("gc_runs");
  c.last_gc = i64("last_gc");
  merge_known(c.build_failures, j.value("build_failures", json::object()));
  merge_known(c.fallbacks, j.value("fallbacks", json::object()));
  merge_known(c.refusals, j.value("refusals", json::object()));
  // The histogram only when its buckets are the ones this build counts in;
  // else it starts again (a counter reset, which Prometheus handles).
  auto h = j.value("build_seconds", json::object());
  std::vector<double> le;
  if (h.contains("le") && h["le"].is_array()) {
    for (const auto& v : h["le"])
      if (v.is_number()) le.push_back(v.get<double>());
  }
  if (le == std::vector<double>(std::begin(kBuildBuckets), std::end(kBuildBuckets)) &&
      h.contains("buckets") && h["buckets"].is_array() && h["buckets"].size() == kBucketCount) {
    for (std::size_t i = 0; i < kBucketCount; ++i)
      c.buckets[i] =
          h["buckets"][i].is_number_unsigned() ? h["buckets"][i].get<std::uint64_t>() : 0;
    c.build_seconds_sum = h.value("sum", 0.0);
    c.build_count = h.value("count", std::uint64_t{0});
  }
  return c;
}

Expected<bool> Registry::load(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return true;  // a first start
  auto text = read_small_regular_file(path);
  auto c = text ? from_json(*text) : std::nullopt;
  if (!c) return Error{path + " is not a counters file this service can read; counting from zero"};
  std::lock_guard lock(mu_);
  c_ = std::move(*c);
  if (c_.since <= 0) c_.since = static_cast<std::int64_t>(std::time(nullptr));
  return true;
}

Expected<bool> Registry::save(const std::string& path) const {
  return write_file_atomically(path, to_json(snapshot()));
}

std::string render(const Counters& c, const Gauges& g, const StoreUsage& s) {
  Text t;
  t.family("clsi_venv_cache_hits_total", "counter",
           "Compiles whose venv was complete: reused by the compile host, or found by the "
           "service at once.");
  t.sample("clsi_venv_cache_hits_total", c.hits);
  t.family("clsi_venv_cache_misses_total", "counter",
           "Build requests of compiles that found no complete venv.");
  t.sample("clsi_venv_cache_misses_total", c.misses);
  t.family("clsi_venv_builds_total", "counter", "Venv builds that succeeded.");
  t.sample("clsi_venv_builds_total", c.builds);
  t.family("clsi_venv_build_failures_total", "counter",
           "Venv builds that failed, by whose fault: requirements or service.");
  for (const auto& [k, v] : c.build_failures)
    t.sample("clsi_venv_build_failures_total", v, Text::label("class", k));
  t.family("clsi_venv_fallbacks_total", "counter",
           "Compiles that rendered on the base interpreter, by reason.");
  for (const auto& [k, v] : c.fallbacks)
    t.sample("clsi_venv_fallbacks_total", v, Text::label("reason", k));
  t.family("clsi_venv_refusals_total", "counter",
           "Refusals: requirements files (by the plugin), peers, builds for want of disk, a "
           "busy service, malformed requests.");
  for (const auto& [k, v] : c.refusals)
    t.sample("clsi_venv_refusals_total", v, Text::label("reason", k));
  t.family("clsi_venv_gated_compiles_total", "counter",
           "Compiles with a requirements file whose user may not install packages.");
  t.sample("clsi_venv_gated_compiles_total", c.gated);
  t.family("clsi_venv_evictions_total", "counter", "Venvs evicted.");
  t.sample("clsi_venv_evictions_total", c.evictions);
  t.family("clsi_venv_gc_runs_total", "counter", "Eviction passes of the service.");
  t.sample("clsi_venv_gc_runs_total", c.gc_runs);
  t.family("clsi_venv_last_gc_timestamp_seconds", "gauge",
           "When the service last ran eviction (0: not since the counters started).");
  t.sample("clsi_venv_last_gc_timestamp_seconds", c.last_gc);
  t.family("clsi_venv_counters_since_timestamp_seconds", "gauge",
           "When these counters started counting (kept across restarts).");
  t.sample("clsi_venv_counters_since_timestamp_seconds", c.since);

  t.family("clsi_venv_build_duration_seconds", "histogram", "Duration of successful builds.");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kBucketCount; ++i) {
    cumulative += c.buckets[i];
    t.sample("clsi_venv_build_duration_seconds_bucket", cumulative,
             Text::label("le", number(kBuildBuckets[i])));
  }
  t.sample("clsi_venv_build_duration_seconds_bucket", c.build_count, Text::label("le", "+Inf"));
  t.sample_double("clsi_venv_build_duration_seconds_sum", c.build_seconds_sum);
  t.sample("clsi_venv_build_duration_seconds_count", c.build_count);

  if (g.running) {
    t.family("clsi_venv_builds_running", "gauge", "Builds running now.");
    t.sample("clsi_venv_builds_running", static_cast<std::int64_t>(*g.running));
  }
  if (g.queued) {
    t.family("clsi_venv_builds_queued", "gauge", "Builds waiting for a slot.");
    t.sample("clsi_venv_builds_queued", static_cast<std::int64_t>(*g.queued));
  }
  t.family("clsi_venv_store_bytes", "gauge", "Disk used by the whole store.");
  t.sample("clsi_venv_store_bytes", s.total_bytes);
  t.family("clsi_venv_store_files", "gauge", "Files, directories and links in the store.");
  t.sample("clsi_venv_store_files", s.files);
  t.family("clsi_venv_store_part_bytes", "gauge", "Disk used by each part of the store.");
  for (const auto& [k, v] : s.part_bytes)
    t.sample("clsi_venv_store_part_bytes", v, Text::label("part", k));
  t.family("clsi_venv_store_venvs", "gauge", "Complete venvs in the store.");
  t.sample("clsi_venv_store_venvs", static_cast<std::int64_t>(s.venvs));
  t.family("clsi_venv_store_unreadable_dirs", "gauge",
           "Directories of the store that could not be read when it was measured.");
  t.sample("clsi_venv_store_unreadable_dirs", static_cast<std::int64_t>(s.unreadable));
  t.family("clsi_venv_pip_cache_bytes", "gauge", "Disk used by pip's download cache.");
  auto pip = s.part_bytes.find("pip_cache");
  t.sample("clsi_venv_pip_cache_bytes", pip == s.part_bytes.end() ? std::int64_t{0} : pip->second);
  t.family("clsi_venv_store_budget_bytes", "gauge", "eviction.max_total_mb, in bytes.");
  t.sample("clsi_venv_store_budget_bytes", g.budget_bytes);
  t.family("clsi_venv_pip_cache_budget_bytes", "gauge", "eviction.max_pip_cache_mb, in bytes.");
  t.sample("clsi_venv_pip_cache_budget_bytes", g.pip_cache_max_bytes);
  t.family("clsi_venv_volume_min_free_bytes", "gauge", "eviction.min_free_mb, in bytes.");
  t.sample("clsi_venv_volume_min_free_bytes", g.min_free_bytes);
  if (g.free_bytes) {
    t.family("clsi_venv_volume_free_bytes", "gauge",
             "Free space on the store's volume, for unprivileged writers.");
    t.sample("clsi_venv_volume_free_bytes", *g.free_bytes);
  }
  if (g.start_time) {
    t.family("clsi_venv_service_start_time_seconds", "gauge", "When the service started.");
    t.sample("clsi_venv_service_start_time_seconds", *g.start_time);
  }
  return t.str();
}

int run_stats(const Config& config, const std::string& format, std::ostream& out,
              std::ostream& err) {
  Store store(config.venvs_dir);
  auto usage = measure_store(store);
  if (!usage) {
    err << "clsi-venvs stats: " << usage.error() << '\n';
    return 1;
  }
  // The running service's counters, else those it saved when it stopped.
  Registry registry;
  std::optional<Counters> live;
  if (auto text = service_counters(config)) live = from_json(*text);
  if (!live) {
    if (auto l = registry.load(store.metrics_state_path()); !l) {
      err << "clsi-venvs stats: " << l.error() << '\n';
      return 1;
    }
  }
  Counters c = live ? *live : registry.snapshot();
  Gauges g;
  g.budget_bytes = config.eviction.max_total_mb * 1024 * 1024;
  g.pip_cache_max_bytes = config.eviction.max_pip_cache_mb * 1024 * 1024;
  g.min_free_bytes = config.eviction.min_free_mb * 1024 * 1024;
  if (auto f = free_bytes(store.root())) g.free_bytes = *f;
  if (auto s = service_status(config)) {
    g.running = s->running;
    g.queued = s->queued;
  }
  if (format == "prometheus") {
    out << render(c, g, *usage);
    return 0;
  }
  std::uint64_t fallbacks = 0, failures = 0;
  for (const auto& [k, v] : c.fallbacks)
    fallbacks += v;
  for (const auto& [k, v] : c.build_failures)
    failures += v;
  if (format == "json") {
    json j = json::parse(to_json(c));
    j.erase("version");
    j["store_bytes"] = usage->total_bytes;
    j["store_files"] = usage->files;
    j["store_parts"] = usage->part_bytes;
    j["venvs"] = usage->venvs;
    if (g.running) j["builds_running"] = *g.running;
    if (g.queued) j["builds_queued"] = *g.queued;
    out << j.dump(1) << '\n';
    return 0;
  }
  const std::uint64_t lookups = c.hits + c.misses;
  out << "counting since " << format_utc(c.since, "%Y-%m-%d %H:%M:%S UTC") << '\n'
      << "hits        " << c.hits << '\n'
      << "misses      " << c.misses << '\n'
      << "hit ratio   " << (lookups ? std::to_string(100 * c.hits / lookups) + "%" : "-") << '\n'
      << "builds      " << c.builds << " (mean "
      << (c.build_count ? std::to_string(c.build_seconds_sum / static_cast<double>(c.build_count))
                        : std::string("-"))
      << " s)\n"
      << "failures    " << failures << " (requirements " << c.build_failures["requirements"]
      << ", service " << c.build_failures["service"] << ")\n"
      << "fallbacks   " << fallbacks << '\n'
      << "gated       " << c.gated << '\n'
      << "evictions   " << c.evictions << ", last gc "
      << format_utc(c.last_gc, "%Y-%m-%d %H:%M:%S UTC") << '\n'
      << "disk        " << human_size(usage->total_bytes) << " in " << usage->files << " files, "
      << usage->venvs << " venv(s), " << human_size(usage->part_bytes["dists"])
      << " of distributions they share, pip cache " << human_size(usage->part_bytes["pip_cache"])
      << '\n';
  if (g.running && g.queued)
    out << "builds      " << *g.running << " running, " << *g.queued << " queued\n";
  return 0;
}

}  // namespace clsi::venv::metrics
