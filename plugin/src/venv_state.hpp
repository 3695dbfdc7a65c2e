// The one answer to "may this venv be used for these requirements?", asked
// by a compile host before it injects a venv and by the build service before
// it answers "ready" or decides to (re)build.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "store.hpp"

namespace clsi::venv {

enum class VenvState {
  kAbsent,     // no record: never built, being built, or a leftover of a crash
  kUsable,     // complete, trusted, and its interpreter is the base interpreter
  kUnhealthy,  // complete, but the base interpreter changed under it: rebuild
  kUntrusted,  // a record or venv the store's owner did not leave as it is
};

struct VenvCheck {
  VenvState state = VenvState::kAbsent;
  std::string why;  // for every state but kUsable
};

// Reads only and takes no lock; a caller that uses the venv holds its shared
// lock while it asks. `requested`: the canonical requirement lines.
VenvCheck check_venv(const Store& store, uid_t owner, const std::string& key,
                     const std::vector<std::string>& requested);

}  // namespace clsi::venv
