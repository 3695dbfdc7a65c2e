// One build of one key, by the build service while it holds the key's
// exclusive lock. Removes a leftover, installs, then either marks the
// venv complete or remembers why it failed.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "config.hpp"
#include "installer.hpp"
#include "store.hpp"

namespace clsi::venv {

struct BuildOutcome {
  bool ok = false;
  bool service_fault = false;  // see BuildResult: not the requirements' fault
  std::string failure;
  Record record;
};

// The caller must hold the exclusive lock of `request.key`. `cancelled`
// (optional) tells a failure caused by the builder stopping, which is not
// remembered against the requirements.
BuildOutcome build_locked(const Config& config, const Store& store, const ProcessRunner& runner,
                          const BuildRequest& request, const LineSink& log,
                          const std::function<bool()>& cancelled = {});

// LRU eviction when the store is over eviction.max_total_mb, keeping `keep`.
// Call it without holding a key's lock: it takes each one it needs itself.
void evict_if_over_budget(const Config& config, const Store& store,
                          const std::set<std::string>& keep, const LineSink& log);

// The deadline of a build that starts now, and how to name it in messages.
void set_install_deadline(const Config& config, BuildRequest& request);

}  // namespace clsi::venv
