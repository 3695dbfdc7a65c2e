// The conversation between a compile host (the plugin, `clsi-venvs warm`) and
// the build service (`clsi-venvs serve`), written and read by this one file on
// both sides. One request per connection over a UNIX stream socket; every
// message is one line of JSON.
//
//   client -> service   {"op": "build", "requirements": ["alpha==1.0", ...],
//                        "project_id": "...", "user_id": "..."}
//   service -> client   {"event": "key", "key": "<64 hex>"}
//                       {"event": "queued", "position": 2}      (while queued)
//                       {"event": "line", "text": "..."}        (progress, for output.log)
//                       {"event": "done", "ok": true, "key": "..."}
//                       {"event": "done", "ok": false, "cause": "requirements"|"service",
//                        "reason": "..."}
//
//   client -> service   {"op": "used", "key": "...", "hit": true}   last use (post-compile)
//   service -> client   {"event": "done", "ok": true}
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

namespace clsi::venv::protocol {

using Clock = std::chrono::steady_clock;

// Longest line either side accepts: a request of max_requirement_lines lines
// fits many times over; anything longer is a broken or hostile peer.
inline constexpr std::size_t kMaxLine = 1 << 20;

// Why a build did not give a usable venv: the project's requirements, or the
// service (unreachable, stopping, out of disk). Only the first is the user's.
enum class Cause { kNone, kRequirements, kService };

struct BuildRequest {
  std::vector<std::string> requirements;  // canonical lines
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
  std::string reason;                                 // done, !ok
  int running = 0, queued = 0, max_running_seen = 0;  // status
};

std::string encode_build(const BuildRequest& r);
std::string encode_used(const std::string& key, bool hit);
std::string encode_status_request();
std::string encode(const Event& e);

// A request as the service reads it; an error names what is malformed.
struct Request {
  std::string op;  // build | used | status
  BuildRequest build;
  std::string key;
  bool hit = false;
};
Expected<Request> decode_request(const std::string& line);
Expected<Event> decode_event(const std::string& line);

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
