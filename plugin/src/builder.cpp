#include "builder.hpp"

#include <sys/stat.h>

#include "eviction.hpp"
#include "kernelspec.hpp"
#include "key.hpp"

namespace clsi::venv {

void set_install_deadline(const Config& config, BuildRequest& request) {
  request.deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(config.caps.install_timeout_s);
  request.deadline_reason =
      "caps.install_timeout_s (" + std::to_string(config.caps.install_timeout_s) + " s)";
}

BuildOutcome build_locked(const Config& config, const Store& store, const ProcessRunner& runner,
                          const BuildRequest& request, const LineSink& log,
                          const std::function<bool()>& cancelled) {
  BuildOutcome out;
  const std::string id = short_key(request.key);
  struct stat st {};
  if (store.is_complete(request.key)) {
    log(note("environment " + id +
             " in the store can no longer be used (its interpreter changed, or its record "
             "does not match); rebuilding it"));
  } else if (::lstat(store.env_dir(request.key).c_str(), &st) == 0) {
    log(note("removing an unfinished build of environment " + id +
             " left by an interrupted build"));
  }
  if (auto removed = store.remove_env(request.key); !removed) {
    out.failure = removed.error();
    return out;
  }
  log(note("building environment " + id + " (" + std::to_string(request.requirements.size()) +
           " requirement(s))"));
  Installer installer(config, store, runner);
  auto built = installer.build(request, log);
  if (built.ok) {
    // Written by our code after pip, so a wheel cannot choose the kernel.
    if (auto k = write_kernelspec(store.env_dir(request.key), kernel_display_name(id)); !k) {
      (void)store.remove_env(request.key);
      built.ok = false;
      built.failure = k.error();
    } else if (auto w = store.write_record(built.record); !w) {
      (void)store.remove_env(request.key);
      built.ok = false;
      built.failure = "could not mark the environment complete: " + w.error();
    }
  }
  if (!built.ok) {
    out.failure = built.failure;
    out.service_fault = built.service_fault || (cancelled && cancelled());
    // Only the requirements' own faults are remembered: a retry cannot help
    // those, and would help everything else.
    if (!out.service_fault) {
      (void)store.remember_failure(request.key, built.failure);
      store.append_event("failure", request.key);
    }
    log(note("building environment " + id + " failed: " + built.failure));
    return out;
  }
  store.forget_failure(request.key);
  store.append_event("build", request.key, built.record.build_seconds);
  char secs[32];
  (void)std::snprintf(secs, sizeof secs, "%.1f", built.record.build_seconds);  // cut short at worst
  log(note("built environment " + id + " in " + secs + " s (" +
           std::to_string(built.record.installed.size()) + " package(s), " +
           human_size(built.record.size_bytes) + ")"));
  out.ok = true;
  out.record = std::move(built.record);

  return out;
}

void evict_if_over_budget(const Config& config, const Store& store,
                          const std::set<std::string>& keep, const LineSink& log) {
  if (!config.eviction.gc_after_build) return;
  auto usage = store_usage(store);
  if (usage.total_bytes <= config.eviction.max_total_mb * 1024 * 1024) return;
  log(note("the store is over eviction.max_total_mb (" +
           std::to_string(config.eviction.max_total_mb) +
           " MB); evicting the least recently used environments"));
  auto report = collect_garbage(store, config.eviction.max_total_mb * 1024 * 1024, false, keep);
  for (const auto& line : report.lines)
    log(note("gc: " + line));
  for (const auto& key : report.removed)
    store.append_event("evict", key);
}

}  // namespace clsi::venv
