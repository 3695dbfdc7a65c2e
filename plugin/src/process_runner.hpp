// The seam through which the plugin runs processes. Production: clsi::run_streaming.
#pragma once

#include <functional>

#include "clsi/child_process.hpp"

namespace clsi::venv {

using ProcessRunner =
    std::function<RunOutcome(const SpawnOptions&, Deadline, const LineSink&, const PollHook&)>;

inline ProcessRunner default_process_runner() {
  return [](const SpawnOptions& o, Deadline d, const LineSink& sink, const PollHook& hook) {
    return run_streaming(o, d, sink, hook);
  };
}

}  // namespace clsi::venv
