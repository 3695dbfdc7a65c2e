// A compile host's side of the conversation with the build service
// (protocol.hpp): ask for a venv and follow its build; report a use.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "protocol.hpp"

namespace clsi::venv {

struct BuildAnswer {
  bool ok = false;
  std::string key;  // as the service computed it; set once it said so
  protocol::Cause cause = protocol::Cause::kNone;
  std::string reason;  // !ok: in a user's words
  // !ok: what pip could not install, per requirement (protocol.hpp); the
  // compile annotates its own file's lines with them.
  std::vector<RequirementProblem> problems;
  bool unreachable = false;  // no service answered (down, refused, broken)
  bool timed_out = false;    // the caller's deadline or cancellation came first
};

// Asks for the venv of `requirements` (canonical lines), streaming the
// service's progress lines (each ending in '\n') to `on_line`, until it is
// ready, failed, or `deadline` passes or `cancelled` says so. The build goes
// on in the service when this returns early.
BuildAnswer request_build(const Config& config, const protocol::BuildRequest& request,
                          protocol::Clock::time_point deadline,
                          const std::function<void(const std::string&)>& on_line,
                          const std::function<bool()>& cancelled = {});

// Tells the service a compile used `key` (its last use, for LRU). Best effort,
// bounded by service.connect_timeout_ms; "" when told, else why not.
std::string report_use(const Config& config, const std::string& key, bool hit);
// Tells the service what a compile came to (its metrics count it) and, when
// a venv was used, marks its last use. Same bounds and answer as report_use.
std::string report_outcome(const Config& config, const protocol::UseReport& report);

// The same report, sent as pre-compile ends, its answer read in post-compile
// (answer_of_outcome): the compile does not wait for the service in between,
// and the service has counted it, and stamped the venv's last use, before
// the compile ends. Tries once, at once: nullopt when the service could not
// take it then (post-compile then reports with report_outcome).
std::optional<protocol::LineChannel> send_outcome(const Config& config,
                                                  const protocol::UseReport& report);
// The answer to send_outcome's report, within service.connect_timeout_ms:
// "" when told, else why not.
std::string answer_of_outcome(const Config& config, protocol::LineChannel& channel);

// The service's counters; nullopt when it cannot be asked.
std::optional<protocol::Event> service_status(const Config& config);

// The service's counters now (metrics.json's format); nullopt when it cannot be asked.
std::optional<std::string> service_counters(const Config& config);

}  // namespace clsi::venv
