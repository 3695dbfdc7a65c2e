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

}  // namespace

std::string encode_build(const BuildRequest& r) {
  return dump({{"op", "build"},
               {"requirements", r.requirements},
               {"project_id", r.project_id},
               {"user_id", r.user_id}});
}

std::string encode_used(const std::string& key, bool hit) {
  return dump({{"op", "used"}, {"key", key}, {"hit", hit}});
}

std::string encode_status_request() {
  return dump({{"op", "status"}});
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
    }
  }
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
    for (auto [field, out] :
         {std::pair{"project_id", &r.build.project_id}, std::pair{"user_id", &r.build.user_id}}) {
      auto it = j.find(field);
      if (it != j.end() && it->is_string()) *out = it->get<std::string>();
    }
    return r;
  }
  if (r.op == "used") {
    auto key = j.find("key");
    if (key == j.end() || !key->is_string()) return Error{"\"used\" needs a \"key\""};
    r.key = key->get<std::string>();
    auto hit = j.find("hit");
    r.hit = hit != j.end() && hit->is_boolean() && hit->get<bool>();
    return r;
  }
  if (r.op == "status") return r;
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
  return e;
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
