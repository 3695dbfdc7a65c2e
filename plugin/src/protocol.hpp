// The conversation between a compile host (the plugin, `clsi-venvs warm`) and
// the build service (`clsi-venvs serve`), written and read by this one file on
// both sides. One request per connection over a UNIX stream socket; every
// message is one line of JSON.
//
//   client -> service   {"op": "build", "requirements": ["alpha==1.0", ...],
//                        "project_id": "...", "user_id": "...", "compile_id": "...",
//                        "origin": "compile"|"warm"|"rewarm"}     (the last two: optional)
//   service -> client   {"event": "key", "key": "<64 hex>"}
//                       {"event": "queued", "position": 2}      (while queued)
//                       {"event": "line", "text": "..."}        (progress, for output.log)
//                       {"event": "done", "ok": true, "key": "..."}
//                       {"event": "done", "ok": false, "cause": "requirements"|"service",
//                        "reason": "...", "problems": [{"requirements": ["gamma==9.9"],
//                        "text": "no version of gamma matches ==9.9 (available: 0.3)",
//                        "conflict": false}, ...]}     (problems: optional)
//
//   client -> service   {"op": "used", "key": "...", "hit": true,     what a compile did
//                        "outcome": "hit"|"ready"|"fallback"|"refused"|"gated",
//                        "reason": "<fallback reason>", "compile_id": "...",
//                        "project_id": "...", "user_id": "..."}  (as pre-compile ends)
//   service -> client   {"event": "done", "ok": true}
//
// "used" marks the last use of `key` (hit, ready) and counts the compile's
// outcome in the service's metrics. The plugin reads the answer in
// post-compile: the round trip overlaps the render. A compile that fell back, was refused or
// gated sends "key": "" (a service from before "outcome" answers it and does
// nothing); a "used" without "outcome" (an older plugin) is a hit or ready.
//
//   client -> service   {"op": "status"}
//   service -> client   {"event": "status", "running": N, "queued": N, "max_running_seen": N}
//
// The service trusts nothing in a request: it parses the requirement lines
// again with the allowlist parser and computes the key itself.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "clsi/unique_fd.hpp"
#include "expected.hpp"
#include "requirements.hpp"

namespace clsi::venv::protocol {

using Clock = std::chrono::steady_clock;

// Longest line either side accepts: a request of max_requirement_lines lines
// fits many times over; anything longer is a broken or hostile peer.
inline constexpr std::size_t kMaxLine = 1 << 20;

// Why a build did not give a usable venv: the project's requirements, or the
// service (unreachable, stopping, out of disk). Only the first is the user's.
enum class Cause { kNone, kRequirements, kService };

// Who asks for a build: a compile counts as a cache miss or hit in the
// service's metrics, `clsi-venvs warm` and `rewarm` do not.
enum class Origin { kCompile, kWarm, kRewarm };

struct BuildRequest {
  std::vector<std::string> requirements;  // canonical lines
  std::string project_id;
  std::string user_id;
  std::string compile_id;
  Origin origin = Origin::kCompile;
};

// What one compile with a requirements file came to, as the plugin reports
// it after the compile. Every value but kHit and kReady is a fallback of
// some kind: the render ran on the base interpreter.
enum class Outcome {
  kHit,                 // reused a complete venv without asking the service
  kReady,               // the service built it, or had it, and it was used
  kRefused,             // the requirements file, or lines of it, were refused
  kGated,               // this compile's user may not install packages
  kServiceUnavailable,  // the service could not be reached, or refused the compile host
  kBuildFailed,         // the build failed for a reason of the requirements
  kServiceFault,        // the build failed for a reason of the service's
  kDeadline,            // not ready before the compile's deadline
  kCancelled,           // the compile was cancelled while waiting
  kUnusable,            // built, but not usable from this compile host
  kHostRefused,         // the host refused to set the environment
  kPluginError,         // an unexpected exception inside the plugin
};
inline constexpr Outcome kAllOutcomes[] = {Outcome::kHit,
                                           Outcome::kReady,
                                           Outcome::kRefused,
                                           Outcome::kGated,
                                           Outcome::kServiceUnavailable,
                                           Outcome::kBuildFailed,
                                           Outcome::kServiceFault,
                                           Outcome::kDeadline,
                                           Outcome::kCancelled,
                                           Outcome::kUnusable,
                                           Outcome::kHostRefused,
                                           Outcome::kPluginError};
// "hit", "ready", "refused", "gated", or "fallback" for the rest.
const char* outcome_kind(Outcome o);
// The fallback reason ("service_unavailable", ...); "" for the four above.
const char* fallback_reason(Outcome o);
[[nodiscard]] bool is_fallback(Outcome o);

struct UseReport {
  std::string key;  // "" when no venv was used
  Outcome outcome = Outcome::kHit;
  std::string compile_id;
  std::string project_id;
  std::string user_id;
};

struct Event {
  std::string event;  // key | queued | line | done | status | error
  std::string key;
  std::string text;  // line
  int position = 0;  // queued
  bool ok = false;   // done
  Cause cause = Cause::kNone;
  std::string reason;  // done, !ok
  // done, !ok: what pip could not install, per requirement; each compile
  // turns them into annotations on its own file's lines.
  std::vector<RequirementProblem> problems;
  int running = 0, queued = 0, max_running_seen = 0;  // status
};

std::string encode_build(const BuildRequest& r);
std::string encode_used(const std::string& key, bool hit);
std::string encode_used(const UseReport& report);
std::string encode_status_request();
// {"op": "counters"} -> {"event": "counters", "text": "<metrics.json as the service has it now>"}
// (a service from before it answers an error).
std::string encode_counters_request();
std::string encode(const Event& e);

// A request as the service reads it; an error names what is malformed.
struct Request {
  std::string op;  // build | used | status
  BuildRequest build;
  std::string key;
  bool hit = false;
  UseReport used;  // op "used": key and outcome (from "hit" when "outcome" is missing)
};
Expected<Request> decode_request(const std::string& line);
Expected<Event> decode_event(const std::string& line);

// Problems as one line of JSON (an array), e.g. for a failure record, and
// back; what does not parse, or is past the bounds below, is left out.
inline constexpr std::size_t kMaxProblems = 64;
inline constexpr std::size_t kMaxProblemText = 2000;
std::string encode_problems(const std::vector<RequirementProblem>& problems);
std::vector<RequirementProblem> decode_problems(std::string_view json_text);

// Buffered line I/O on a non-blocking socket, every call bounded by a deadline.
class LineChannel {
 public:
  explicit LineChannel(UniqueFd fd) : fd_(std::move(fd)) {}
  [[nodiscard]] int fd() const { return fd_.get(); }
  // Writes `line` and a newline. False on error, a closed peer or the deadline.
  bool send(const std::string& line, Clock::time_point deadline);
  // One line without its newline; nullopt at EOF, on error, on a line over
  // kMaxLine, or at the deadline (then timed_out() is true). `stop` is asked
  // about every 100 ms and ends the wait when it returns true.
  std::optional<std::string> receive(Clock::time_point deadline,
                                     const std::function<bool()>& stop = {});
  [[nodiscard]] bool timed_out() const { return timed_out_; }

 private:
  UniqueFd fd_;
  std::string buffer_;
  bool timed_out_ = false;
};

// Connects to the service's socket without blocking past `deadline`.
Expected<LineChannel> connect(const std::string& socket_path, Clock::time_point deadline);

}  // namespace clsi::venv::protocol
