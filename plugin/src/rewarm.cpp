#include "rewarm.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <thread>

#include "eviction.hpp"
#include "key.hpp"
#include "service_client.hpp"

namespace clsi::venv {

std::vector<RewarmSet> sets_to_rewarm(const Config& config, std::int64_t used_within_s) {
  Store store(config.venvs_dir);
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  std::map<std::vector<std::string>, RewarmSet> by_set;
  for (auto& e : scan_envs(store, false)) {
    if (!e.complete || !e.record || e.record->requested.empty()) continue;
    if (now - e.last_used > used_within_s) continue;
    auto reqs = e.record->requested;
    std::sort(reqs.begin(), reqs.end());
    auto& s = by_set[reqs];
    if (s.from_key.empty() || e.last_used > s.last_used) {
      s.requirements = e.record->requested;
      s.from_key = e.key;
      s.last_used = e.last_used;
    }
  }
  std::vector<RewarmSet> out;
  out.reserve(by_set.size());
  for (auto& [reqs, s] : by_set)
    out.push_back(std::move(s));
  std::sort(out.begin(), out.end(),
            [](const RewarmSet& a, const RewarmSet& b) { return a.last_used > b.last_used; });
  return out;
}

int run_rewarm(const Config& config, std::int64_t used_within_s, std::ostream& out) {
  auto sets = sets_to_rewarm(config, used_within_s);
  out << sets.size() << " requirement set(s) used within the last "
      << (used_within_s % 86400 == 0 ? std::to_string(used_within_s / 86400) + " day(s)"
                                     : std::to_string(used_within_s) + " s")
      << '\n'
      << std::flush;
  std::mutex out_mu;
  std::atomic<std::size_t> next{0};
  std::atomic<int> failed{0};
  auto work = [&] {
    for (std::size_t i = next++; i < sets.size(); i = next++) {
      const auto& s = sets[i];
      protocol::BuildRequest request;
      request.requirements = s.requirements;
      request.project_id = "clsi-venvs rewarm";
      request.origin = protocol::Origin::kRewarm;
      const auto started = std::chrono::steady_clock::now();
      auto answer = request_build(
          config, request, started + std::chrono::seconds(config.caps.install_timeout_s + 60),
          [](const std::string&) {});
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      std::string line = "environment " + short_key(s.from_key) + " -> ";
      if (answer.ok && answer.key == s.from_key) {
        line += short_key(answer.key) + ": current";
      } else if (answer.ok) {
        char t[32];
        (void)std::snprintf(t, sizeof t, "%.1f", secs);  // fits
        line += short_key(answer.key) + ": ready (" + t + " s)";
      } else {
        ++failed;
        line += (answer.key.empty() ? std::string("?") : short_key(answer.key)) +
                ": not built: " + (answer.unreachable ? "the build service is unavailable: " : "") +
                (answer.timed_out ? std::string("it did not finish in time") : answer.reason);
      }
      std::lock_guard lock(out_mu);
      out << line << '\n' << std::flush;
    }
  };
  const int parallel =
      std::max(1, std::min<int>(config.service.max_parallel_builds, static_cast<int>(sets.size())));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(parallel));
  for (int i = 0; i < parallel; ++i)
    threads.emplace_back(work);
  for (auto& t : threads)
    t.join();
  return failed > 0 ? 1 : 0;
}

}  // namespace clsi::venv
