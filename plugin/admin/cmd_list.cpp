// clsi-venvs list: what the store holds, most recently used first.
#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "admin_output.hpp"
#include "clsi/errno_text.hpp"
#include "commands.hpp"
#include "eviction.hpp"
#include "key.hpp"

namespace clsi::venv::admin {

namespace {

// A store that is not there (a wrong venvs_dir, a volume not mounted) is
// not an empty one: listing it did not happen.
void require_readable(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    throw NotDone("cannot read " + dir + ", the store's envs/: " + errno_text(errno) +
                  " (python_venv.venvs_dir; the build service lays the store out when it starts)");
  }
  ::closedir(d);
}

}  // namespace

int list(const Config& config, const Common& common) {
  Store store(config.venvs_dir);
  require_readable(store.envs_dir());
  auto envs = scan_envs(store, true);
  std::sort(envs.begin(), envs.end(),
            [](const EnvInfo& x, const EnvInfo& y) { return x.last_used > y.last_used; });
  if (common.json) {
    // An array of environments (its shape since list --json was added).
    Json out = Json::array();
    for (const auto& e : envs) {
      out.push_back({{"key", e.key},
                     {"state", state_of(store, e)},
                     {"size_bytes", e.size_bytes},
                     {"last_used", iso_time(e.last_used)},
                     {"built_at", iso_time(e.record ? e.record->built_at : 0)},
                     {"build_seconds", e.record ? e.record->build_seconds : 0.0},
                     {"requirements", e.record ? e.record->requested : std::vector<std::string>{}},
                     {"installed", e.record ? e.record->installed : std::vector<std::string>{}},
                     {"path", store.env_dir(e.key)}});
    }
    print_json(out);
    return kExitDone;
  }
  std::printf("%-12s  %-10s  %10s  %-20s  %-20s  %s\n", "KEY", "STATE", "SIZE", "LAST USED",
              "BUILT", "REQUIREMENTS");
  std::int64_t total = 0;
  for (const auto& e : envs) {
    std::string reqs;
    if (e.record) {
      for (const auto& r : e.record->requested)
        reqs += (reqs.empty() ? "" : " ") + r;
    }
    std::printf("%-12s  %-10s  %10s  %-20s  %-20s  %s\n", short_key(e.key).c_str(),
                state_of(store, e).c_str(), human_size(e.size_bytes).c_str(),
                iso_time(e.last_used).c_str(), iso_time(e.record ? e.record->built_at : 0).c_str(),
                reqs.c_str());
    total += e.size_bytes;
  }
  std::printf("%zu environment(s), %s in %s\n", envs.size(), human_size(total).c_str(),
              store.envs_dir().c_str());
  return kExitDone;
}

}  // namespace clsi::venv::admin
