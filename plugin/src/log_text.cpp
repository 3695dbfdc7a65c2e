#include "log_text.hpp"

#include <cstdio>

namespace clsi::venv {
namespace {

std::string hex_byte(unsigned char c) {
  char buf[8];
  (void)std::snprintf(buf, sizeof buf, "\\x%02x", c);  // fits: 4 characters
  return buf;
}

std::string code_point(unsigned cp) {
  char buf[12];
  (void)std::snprintf(buf, sizeof buf, "\\u%04x", cp);  // fits: at most 10 characters
  return buf;
}

// Length of the UTF-8 sequence at s[i] (1..4), 0 when it is not valid UTF-8.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto at = [&](std::size_t k) {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0;
  };
  auto cont = [&](std::size_t k, unsigned char lo = 0x80, unsigned char hi = 0xbf) {
    return at(k) >= lo && at(k) <= hi;
  };
  unsigned char c = at(0);
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf && cont(1)) return 2;
  if (c >= 0xe0 && c <= 0xef && cont(1, c == 0xe0 ? 0xa0 : 0x80, c == 0xed ? 0x9f : 0xbf) &&
      cont(2))
    return 3;
  if (c >= 0xf0 && c <= 0xf4 && cont(1, c == 0xf0 ? 0x90 : 0x80, c == 0xf4 ? 0x8f : 0xbf) &&
      cont(2) && cont(3))
    return 4;
  return 0;
}

}  // namespace

std::string escape_line(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        out += hex_byte(c);
      } else {
        out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    std::size_t n = utf8_length(s, i);
    if (n == 0) {
      out += hex_byte(c);
      ++i;
      continue;
    }
    unsigned cp = 0;
    if (n == 2) cp = ((c & 0x1fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3fu);
    if (n == 3)
      cp = ((c & 0x0fu) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3fu) << 6) |
           (static_cast<unsigned char>(s[i + 2]) & 0x3fu);
    if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) {
      out += code_point(cp);
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  return out;
}

std::string log_lines(std::string_view text) {
  std::string out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto nl = text.find('\n', start);
    auto end = nl == std::string_view::npos ? text.size() : nl;
    out += escape_line(text.substr(start, end - start));
    out += '\n';
    start = end + 1;
  }
  if (out.empty()) out.push_back('\n');
  return out;
}

std::string echo_text(std::string_view text) {
  std::string e = escape_line(text);
  std::string out;
  out.reserve(e.size());
  auto digit = [&](std::size_t k) { return k < e.size() && e[k] >= '0' && e[k] <= '9'; };
  for (std::size_t i = 0; i < e.size(); ++i) {
    // ":<digits>:" is what a parser takes for a line number; a port is not.
    std::size_t k = i + 1;
    while (digit(k))
      ++k;
    if (e[i] == ':' && k > i + 1 && k < e.size() && e[k] == ':') {
      out += "\\x3a";
    } else {
      out += e[i];
    }
  }
  return out;
}

}  // namespace clsi::venv
