// A very small HTTP/1.1 server for one thing: GET /metrics. No Debian
// library fits: prometheus-cpp (packaged, 1.0) cannot answer a scrape with an
// error when the store cannot be read (its collectables return families, and
// a 200 with them), and it would bring civetweb's worker threads into the
// service; a scrape needs none of that. This one runs on the caller's thread,
// serves one connection at a time, bounds every read and write by a
// deadline and a request by its size, answers "Connection: close", and
// never throws on what a peer sends.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "clsi/unique_fd.hpp"
#include "expected.hpp"

namespace clsi::venv {

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain; version=0.0.4; charset=utf-8";
};

class MetricsHttpServer {
 public:
  // Whole request (line and headers) at most this long, and read within the
  // timeout; a response is written within the timeout too.
  static constexpr std::size_t kMaxRequest = 8192;
  static constexpr std::chrono::milliseconds kTimeout{2000};

  // Listens on "HOST:PORT": an IPv4 address, or an IPv6 one in brackets
  // ("[::1]:9477"); port 0 picks a free one. Non-blocking, close-on-exec.
  static Expected<MetricsHttpServer> listen(const std::string& address);

  [[nodiscard]] int fd() const { return fd_.get(); }
  // What it listens on, e.g. "127.0.0.1:41234".
  [[nodiscard]] const std::string& address() const { return address_; }

  // Accepts one waiting connection (if any), reads its request and answers:
  // GET or HEAD of /metrics gets `render()`, anything else 400, 404, 405 or
  // 431. Returns when the connection is closed.
  void serve_one(const std::function<HttpResponse()>& render) const;

 private:
  MetricsHttpServer() = default;
  UniqueFd fd_;
  std::string address_;
};

// Exposed for tests: the answer to one request's bytes.
struct ParsedRequest {
  int error = 0;  // 0, or the status to answer with
  bool head = false;
};
ParsedRequest parse_http_request(const std::string& request);

}  // namespace clsi::venv
