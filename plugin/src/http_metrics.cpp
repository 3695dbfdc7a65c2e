#include "http_metrics.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "clsi/errno_text.hpp"

namespace clsi::venv {
namespace {

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Internal Server Error";
  }
}

bool send_all(int fd, const std::string& data, Clock::time_point deadline) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (Clock::now() >= deadline) return false;
      pollfd p{fd, POLLOUT, 0};
      (void)::poll(&p, 1, ms_left(deadline));
      continue;
    }
    return false;
  }
  return true;
}

}  // namespace

ParsedRequest parse_http_request(const std::string& request) {
  ParsedRequest p;
  auto eol = request.find("\r\n");
  if (eol == std::string::npos) eol = request.find('\n');
  if (eol == std::string::npos) {
    p.error = 400;
    return p;
  }
  const std::string line = request.substr(0, eol);
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos ||
      line.compare(sp2 + 1, 5, "HTTP/") != 0) {
    p.error = 400;
    return p;
  }
  const std::string method = line.substr(0, sp1);
  std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
  if (method != "GET" && method != "HEAD") {
    p.error = 405;
    return p;
  }
  p.head = method == "HEAD";
  if (target != "/metrics") p.error = 404;
  return p;
}

Expected<MetricsHttpServer> MetricsHttpServer::listen(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size())
    return Error{"service.metrics_address " + address + " is not HOST:PORT"};
  std::string host = address.substr(0, colon);
  const std::string port_text = address.substr(colon + 1);
  if (port_text.find_first_not_of("0123456789") != std::string::npos || port_text.size() > 5 ||
      std::stoi(port_text) > 65535)
    return Error{"service.metrics_address " + address + ": '" + port_text + "' is not a port"};
  const auto port = static_cast<std::uint16_t>(std::stoi(port_text));
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    if (::inet_pton(AF_INET6, host.c_str(), &a6->sin6_addr) != 1)
      return Error{"service.metrics_address " + address + ": '" + host + "' is not an address"};
    family = AF_INET6;
    len = sizeof(sockaddr_in6);
  } else {
    auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    if (::inet_pton(AF_INET, host.c_str(), &a4->sin_addr) != 1)
      return Error{"service.metrics_address " + address + ": '" + host +
                   "' is not an IPv4 address (write an IPv6 one as [::1])"};
    len = sizeof(sockaddr_in);
  }
  MetricsHttpServer s;
  s.fd_.reset(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s.fd_) return Error{std::string("cannot create a socket: ") + clsi::errno_text(errno)};
  int one = 1;
  (void)::setsockopt(s.fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6)
    (void)::setsockopt(s.fd_.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(s.fd_.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      ::listen(s.fd_.get(), 16) != 0) {
    return Error{"cannot listen on " + address +
                 " (service.metrics_address): " + clsi::errno_text(errno)};
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  (void)::getsockname(s.fd_.get(), reinterpret_cast<sockaddr*>(&bound), &blen);
  char text[INET6_ADDRSTRLEN] = {};
  std::uint16_t bound_port = 0;
  if (family == AF_INET6) {
    const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&bound);
    (void)::inet_ntop(AF_INET6, &a6->sin6_addr, text, sizeof text);
    bound_port = ntohs(a6->sin6_port);
    s.address_ = "[" + std::string(text) + "]:" + std::to_string(bound_port);
  } else {
    const auto* a4 = reinterpret_cast<const sockaddr_in*>(&bound);
    (void)::inet_ntop(AF_INET, &a4->sin_addr, text, sizeof text);
    bound_port = ntohs(a4->sin_port);
    s.address_ = std::string(text) + ":" + std::to_string(bound_port);
  }
  return s;
}

void MetricsHttpServer::serve_one(const std::function<HttpResponse()>& render) const {
  UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!c) return;
  const auto deadline = Clock::now() + kTimeout;
  std::string request;
  int status = 0;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos &&
         request.find("\n\n") == std::string::npos) {
    if (request.size() > kMaxRequest) {
      status = 431;
      break;
    }
    ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
    if (n > 0) {
      request.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return;  // closed before a whole request
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return;
    if (Clock::now() >= deadline) {
      status = 408;
      break;
    }
    pollfd p{c.get(), POLLIN, 0};
    (void)::poll(&p, 1, ms_left(deadline));
  }
  HttpResponse response;
  bool head = false;
  if (status == 0) {
    auto parsed = parse_http_request(request);
    status = parsed.error;
    head = parsed.head;
  }
  if (status == 0) {
    response = render();
  } else {
    response.status = status;
    response.body = std::string(reason_phrase(status)) + "\n";
    response.content_type = "text/plain; charset=utf-8";
  }
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " +
                    reason_phrase(response.status) + "\r\nContent-Type: " + response.content_type +
                    "\r\nContent-Length: " + std::to_string(response.body.size()) +
                    "\r\nConnection: close\r\n";
  if (response.status == 405) out += "Allow: GET, HEAD\r\n";
  out += "\r\n";
  if (!head) out += response.body;
  (void)send_all(c.get(), out, deadline);
  ::shutdown(c.get(), SHUT_WR);
}

}  // namespace clsi::venv
