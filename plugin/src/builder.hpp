// One build of one key, by whoever holds the key's exclusive lock: the
// background builder (clsi-venvs build), clsi-venvs warm, or a compile's hook
// when builds run inline. Removes a leftover, installs, then either marks the
// venv complete or remembers why it failed.
#pragma once

#include <string>
#include <vector>

#include "config.hpp"
#include "installer.hpp"
#include "store.hpp"

namespace clsi::venv {

struct BuildOutcome {
  bool ok = false;
  std::string failure;
  Record record;
};

// The caller must hold the exclusive lock of `request.key`.
BuildOutcome build_locked(const Config& config, const Store& store, const ProcessRunner& runner,
                          const BuildRequest& request, const LineSink& log);

// The deadline of a build that starts now, and how to name it in messages.
void set_install_deadline(const Config& config, BuildRequest& request);

}  // namespace clsi::venv
