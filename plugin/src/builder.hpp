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
  bool service_fault = false;                // see BuildResult: not the requirements' fault
  std::string failure;                       // in full, for the operator
  std::string summary;                       // for the user: `failure` unless shorter (BuildResult)
  std::vector<RequirementProblem> problems;  // per requirement, for annotations
  Record record;
};

// The caller must hold the exclusive lock of `request.key`. `cancelled`
// (optional) tells a failure caused by the builder stopping, which is not
// remembered against the requirements. `log` gets the lines for the user
// (and the operator), `detail` everything pip says (the build log).
BuildOutcome build_locked(const Config& config, const Store& store, const ProcessRunner& runner,
                          const BuildRequest& request, const LineSink& log,
                          const std::function<bool()>& cancelled = {}, const LineSink& detail = {},
                          const ResolveAhead& resolve_ahead = {});

// A remembered failure: the user's words and the problems that a compile
// annotates again on its own lines. The failure record keeps one line
// (store.hpp): the reason alone when there are no problems, else a JSON
// object holding both; a record of either form reads back.
struct RememberedFailure {
  std::string reason;
  std::vector<RequirementProblem> problems;
};
std::string encode_failure(const std::string& reason,
                           const std::vector<RequirementProblem>& problems);
RememberedFailure decode_failure(const std::string& stored);

// The deadline of a build that starts now, and how to name it in messages.
void set_install_deadline(const Config& config, BuildRequest& request);

}  // namespace clsi::venv
