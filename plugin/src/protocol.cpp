#include "protocol.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>
#include "clsi/errno_text.hpp"

namespace clsi::venv::protocol {
namespace {

using nlohmann::json;

const char* cause_name(Cause c) {
  switch (c) {
    case Cause::kRequirements:
      return "requirements";
    case Cause::kService:
      return "service";
    case Cause::kNone:
      break;
  }
  return "";
}

Cause cause_of(const std::string& s) {
  if (s == "requirements") return Cause::kRequirements;
  if (s == "service") return Cause::kService;
  return Cause::kNone;
}

int ms_until(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, 100));
}

// json::dump with replacement: a peer's invalid UTF-8 must not throw here.
std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json problems_json(const std::vector<RequirementProblem>& problems) {
  json a = json::array();
  for (const auto& p : problems)
    a.push_back({{"requirements", p.requirements}, {"text", p.text}, {"conflict", p.conflict}});
  return a;
}

std::vector<RequirementProblem> problems_of(const json& a) {
  std::vector<RequirementProblem> out;
  if (!a.is_array()) return out;
  for (const auto& item : a) {
    if (out.size() >= kMaxProblems) break;
    if (!item.is_object()) continue;
    RequirementProblem p;
    auto text = item.find("text");
    if (text == item.end() || !text->is_string()) continue;
    p.text = text->get<std::string>().substr(0, kMaxProblemText);
    auto reqs = item.find("requirements");
    if (reqs != item.end() && reqs->is_array()) {
      for (const auto& r : *reqs) {
        if (r.is_string() && p.requirements.size() < kMaxProblems)
          p.requirements.push_back(r.get<std::string>());
      }
    }
    auto conflict = item.find("conflict");
    p.conflict = conflict != item.end() && conflict->is_boolean() && conflict->get<bool>();
    out.push_back(std::move(p));
  }
  return out;
}

const char* origin_name(Origin o) {
  switch (o) {
    case Origin::kWarm:
      return "warm";
    case Origin::kRewarm:
      return "rewarm";
    case Origin::kCompile:
      break;
  }
  return "compile";
}

Origin origin_of(const std::string& s) {
  if (s == "warm") return Origin::kWarm;
  if (s == "rewarm") return Origin::kRewarm;
  return Origin::kCompile;
}

std::string string_field(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

const char* outcome_kind(Outcome o) {
  switch (o) {
    case Outcome::kHit:
      return "hit";
    case Outcome::kReady:
      return "ready";
    case Outcome::kRefused:
      return "refused";
    case Outcome::kGated:
      return "gated";
    default:
      return "fallback";
  }
}

const char* fallback_reason(Outcome o) {
  switch (o) {
    case Outcome::kServiceUnavailable:
      return "service_unavailable";
    case Outcome::kBuildFailed:
      return "build_failed";
    case Outcome::kServiceFault:
      return "service_fault";
    case Outcome::kDeadline:
      return "deadline";
    case Outcome::kCancelled:
      return "cancelled";
    case Outcome::kUnusable:
      return "unusable";
    case Outcome::kHostRefused:
      return "host_refused";
    case Outcome::kPluginError:
      return "plugin_error";
    default:
      return "";
  }
}

bool is_fallback(Outcome o) {
  return *fallback_reason(o) != '\0';
}

std::string encode_build(const BuildRequest& r) {
  json j = {{"op", "build"},
            {"requirements", r.requirements},
            {"project_id", r.project_id},
            {"user_id", r.user_id}};
  if (!r.compile_id.empty()) j["compile_id"] = r.compile_id;
  if (r.origin != Origin::kCompile) j["origin"] = origin_name(r.origin);
  return dump(j);
}

std::string encode_used(const std::string& key, bool hit) {
  return dump({{"op", "used"}, {"key", key}, {"hit", hit}});
}

std::string encode_used(const UseReport& r) {
  json j = {{"op", "used"},
            {"key", r.key},
            {"hit", r.outcome == Outcome::kHit},
            {"outcome", outcome_kind(r.outcome)},
            {"compile_id", r.compile_id},
            {"project_id", r.project_id},
            {"user_id", r.user_id}};
  if (is_fallback(r.outcome)) j["reason"] = fallback_reason(r.outcome);
  return dump(j);
}

std::string encode_status_request() {
  return dump({{"op", "status"}});
}

std::string encode_counters_request() {
  return dump({{"op", "counters"}});
}

std::string encode(const Event& e) {
  json j = {{"event", e.event}};
  if (!e.key.empty()) j["key"] = e.key;
  if (e.event == "line") j["text"] = e.text;
  if (e.event == "queued") j["position"] = e.position;
  if (e.event == "done") {
    j["ok"] = e.ok;
    if (!e.ok) {
      j["cause"] = cause_name(e.cause);
      j["reason"] = e.reason;
      if (!e.problems.empty()) j["problems"] = problems_json(e.problems);
    }
  }
  if (e.event == "counters") j["text"] = e.text;
  if (e.event == "status") {
    j["running"] = e.running;
    j["queued"] = e.queued;
    j["max_running_seen"] = e.max_running_seen;
  }
  if (e.event == "error") j["reason"] = e.reason;
  return dump(j);
}

Expected<Request> decode_request(const std::string& line) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error{"the request is not a JSON object"};
  Request r;
  auto op = j.find("op");
  if (op == j.end() || !op->is_string()) return Error{"the request has no \"op\""};
  r.op = op->get<std::string>();
  if (r.op == "build") {
    auto reqs = j.find("requirements");
    if (reqs == j.end() || !reqs->is_array()) return Error{"\"requirements\" must be a list"};
    for (const auto& item : *reqs) {
      if (!item.is_string()) return Error{"\"requirements\" must hold strings"};
      r.build.requirements.push_back(item.get<std::string>());
    }
    r.build.project_id = string_field(j, "project_id");
    r.build.user_id = string_field(j, "user_id");
    r.build.compile_id = string_field(j, "compile_id");
    r.build.origin = origin_of(string_field(j, "origin"));
    return r;
  }
  if (r.op == "used") {
    auto key = j.find("key");
    if (key == j.end() || !key->is_string()) return Error{"\"used\" needs a \"key\""};
    r.key = key->get<std::string>();
    auto hit = j.find("hit");
    r.hit = hit != j.end() && hit->is_boolean() && hit->get<bool>();
    r.used.key = r.key;
    r.used.outcome = r.hit ? Outcome::kHit : Outcome::kReady;
    r.used.compile_id = string_field(j, "compile_id");
    r.used.project_id = string_field(j, "project_id");
    r.used.user_id = string_field(j, "user_id");
    const std::string kind = string_field(j, "outcome");
    if (kind == "refused") r.used.outcome = Outcome::kRefused;
    if (kind == "gated") r.used.outcome = Outcome::kGated;
    if (kind == "fallback") {
      // An unknown reason is counted as a plugin error: label values stay a
      // known, small set whatever a peer sends.
      r.used.outcome = Outcome::kPluginError;
      const std::string reason = string_field(j, "reason");
      for (Outcome o : kAllOutcomes)
        if (is_fallback(o) && reason == fallback_reason(o)) r.used.outcome = o;
    }
    return r;
  }
  if (r.op == "status" || r.op == "counters") return r;
  return Error{"unknown op \"" + r.op + "\""};
}

Expected<Event> decode_event(const std::string& line) {
  json j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("event") || !j["event"].is_string())
    return Error{"the build service sent something that is not an event"};
  Event e;
  e.event = j["event"].get<std::string>();
  auto str = [&](const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto num = [&](const char* k) {
    auto it = j.find(k);
    return it != j.end() && it->is_number_integer() ? it->get<int>() : 0;
  };
  e.key = str("key");
  e.text = str("text");
  e.reason = str("reason");
  e.cause = cause_of(str("cause"));
  e.position = num("position");
  e.running = num("running");
  e.queued = num("queued");
  e.max_running_seen = num("max_running_seen");
  auto ok = j.find("ok");
  e.ok = ok != j.end() && ok->is_boolean() && ok->get<bool>();
  if (auto problems = j.find("problems"); problems != j.end()) e.problems = problems_of(*problems);
  return e;
}

std::string encode_problems(const std::vector<RequirementProblem>& problems) {
  return dump(problems_json(problems));
}

std::vector<RequirementProblem> decode_problems(std::string_view json_text) {
  json j = json::parse(json_text, nullptr, false);
  if (j.is_discarded()) return {};
  return problems_of(j);
}

bool LineChannel::send(const std::string& line, Clock::time_point deadline) {
  std::string out = line + "\n";
  std::size_t off = 0;
  while (off < out.size()) {
    ssize_t n = ::send(fd_.get(), out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (Clock::now() >= deadline) return false;
      pollfd p{fd_.get(), POLLOUT, 0};
      ::poll(&p, 1, ms_until(deadline));
      continue;
    }
    return false;
  }
  return true;
}

std::optional<std::string> LineChannel::receive(Clock::time_point deadline,
                                                const std::function<bool()>& stop) {
  timed_out_ = false;
  for (;;) {
    if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (buffer_.size() > kMaxLine) return std::nullopt;
    char buf[16384];
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n > 0) {
      buffer_.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return std::nullopt;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return std::nullopt;
    if (Clock::now() >= deadline || (stop && stop())) {
      timed_out_ = true;
      return std::nullopt;
    }
    pollfd p{fd_.get(), POLLIN, 0};
    ::poll(&p, 1, ms_until(deadline));
  }
}

Expected<LineChannel> connect(const std::string& socket_path, Clock::time_point deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path)
    return Error{"the socket path " + socket_path + " is too long"};
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd;
  int rc = 0;
  auto pause = std::chrono::milliseconds(5);
  for (;;) {
    fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return Error{std::string("cannot create a socket: ") + clsi::errno_text(errno)};
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (rc == 0 || errno != EAGAIN) break;
    // EAGAIN: the service's backlog is full. This socket will never connect;
    // a new one may, shortly.
    if (Clock::now() + pause >= deadline)
      return Error{"the build service at " + socket_path + " is too busy to accept a connection"};
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(100));
  }
  if (rc != 0) {
    if (errno != EINPROGRESS)
      return Error{"cannot connect to " + socket_path + ": " + clsi::errno_text(errno)};
    pollfd p{fd.get(), POLLOUT, 0};
    while (::poll(&p, 1, ms_until(deadline)) == 0) {
      if (Clock::now() >= deadline) return Error{"connecting to " + socket_path + " timed out"};
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Error{"cannot connect to " + socket_path + ": " + clsi::errno_text(err)};
  }
  return LineChannel(std::move(fd));
}

}  // namespace clsi::venv::protocol
