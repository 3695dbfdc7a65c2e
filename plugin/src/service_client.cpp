#include "service_client.hpp"

#include <thread>

namespace clsi::venv {
namespace {

using protocol::Clock;

std::chrono::milliseconds connect_timeout(const Config& config) {
  return std::chrono::milliseconds(config.service.connect_timeout_ms);
}

}  // namespace

BuildAnswer request_build(const Config& config, const protocol::BuildRequest& request,
                          Clock::time_point deadline,
                          const std::function<void(const std::string&)>& on_line,
                          const std::function<bool()>& cancelled) {
  BuildAnswer a;
  // The request is made even when the compile has no time left to wait: the
  // build then happens for the next compile.
  auto connect_by = Clock::now() + connect_timeout(config);
  auto ch = protocol::connect(config.service.socket, connect_by);
  if (!ch) {
    a.unreachable = true;
    a.reason = ch.error();
    return a;
  }
  if (!ch->send(protocol::encode_build(request), connect_by)) {
    a.unreachable = true;
    a.reason = "the build service at " + config.service.socket + " did not take the request";
    return a;
  }
  for (;;) {
    auto line = ch->receive(deadline, cancelled);
    if (!line) {
      if (ch->timed_out()) {
        a.timed_out = true;
      } else {
        a.unreachable = true;
        a.reason = "the build service closed the connection before answering";
      }
      return a;
    }
    auto e = protocol::decode_event(*line);
    if (!e) {
      a.unreachable = true;
      a.reason = e.error();
      return a;
    }
    // The key becomes a path: only 64 hex digits are one.
    if (!e->key.empty() && (e->key.size() != 64 ||
                            e->key.find_first_not_of("0123456789abcdef") != std::string::npos)) {
      a.unreachable = true;
      a.reason = "the build service sent a malformed key";
      return a;
    }
    if (e->event == "key") {
      a.key = e->key;
    } else if (e->event == "line") {
      on_line(e->text);
    } else if (e->event == "queued") {
      if (int ahead = e->position - 1; ahead > 0) {
        on_line("[python-venv] waiting in the build service's queue: " + std::to_string(ahead) +
                (ahead == 1 ? " build is" : " builds are") + " ahead of this one\n");
      }
    } else if (e->event == "done") {
      a.ok = e->ok;
      if (!e->key.empty()) a.key = e->key;
      a.cause = e->cause;
      a.reason = e->reason;
      a.problems = std::move(e->problems);
      return a;
    } else if (e->event == "error") {
      a.unreachable = true;
      a.reason = e->reason;
      return a;
    }
  }
}

namespace {

std::string answer_of(protocol::LineChannel& ch, Clock::time_point deadline) {
  auto answer = ch.receive(deadline);
  if (!answer) return ch.timed_out() ? "no answer in time" : "the connection was closed";
  auto e = protocol::decode_event(*answer);
  if (!e) return e.error();
  return e->event == "done" ? "" : e->reason;
}

// `retry`: once more after 100 ms, for a service that is restarting (a last
// use is worth it; a count for the metrics is not worth delaying a compile).
std::string send_used(const Config& config, const std::string& line, bool retry) {
  auto deadline = Clock::now() + connect_timeout(config);
  auto ch = protocol::connect(config.service.socket, deadline);
  if (!ch && retry) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ch = protocol::connect(config.service.socket, deadline);
  }
  if (!ch) return ch.error();
  if (!ch->send(line, deadline)) return "the request was not taken";
  return answer_of(*ch, deadline);
}

}  // namespace

std::string report_use(const Config& config, const std::string& key, bool hit) {
  return send_used(config, protocol::encode_used(key, hit), true);
}

std::string report_outcome(const Config& config, const protocol::UseReport& report) {
  return send_used(config, protocol::encode_used(report), !report.key.empty());
}

std::optional<protocol::LineChannel> send_outcome(const Config& config,
                                                  const protocol::UseReport& report) {
  const auto now = Clock::now();  // one try: a busy backlog is not waited for here
  auto ch = protocol::connect(config.service.socket, now);
  if (!ch || !ch->send(protocol::encode_used(report), now + connect_timeout(config)))
    return std::nullopt;
  return std::move(*ch);
}

std::string answer_of_outcome(const Config& config, protocol::LineChannel& channel) {
  return answer_of(channel, Clock::now() + connect_timeout(config));
}

std::optional<std::string> service_counters(const Config& config) {
  auto deadline = Clock::now() + connect_timeout(config);
  auto ch = protocol::connect(config.service.socket, deadline);
  if (!ch || !ch->send(protocol::encode_counters_request(), deadline)) return std::nullopt;
  auto line = ch->receive(deadline);
  if (!line) return std::nullopt;
  auto e = protocol::decode_event(*line);
  if (!e || e->event != "counters") return std::nullopt;
  return e->text;
}

std::optional<protocol::Event> service_status(const Config& config) {
  auto deadline = Clock::now() + connect_timeout(config);
  auto ch = protocol::connect(config.service.socket, deadline);
  if (!ch || !ch->send(protocol::encode_status_request(), deadline)) return std::nullopt;
  auto line = ch->receive(deadline);
  if (!line) return std::nullopt;
  auto e = protocol::decode_event(*line);
  if (!e || e->event != "status") return std::nullopt;
  return *e;
}

}  // namespace clsi::venv
