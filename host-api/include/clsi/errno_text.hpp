// The text of an errno value, safe to call from any thread (std::strerror is
// not: it may return a buffer shared by every thread). Plugin hooks and the
// build service's connections run concurrently.
#pragma once

#include <cstring>
#include <string>

namespace clsi {

inline std::string errno_text(int err) {
  char buf[256];
  // The GNU strerror_r (glibc, _GNU_SOURCE as g++ defines it) returns the
  // text, in buf or in static storage.
  return ::strerror_r(err, buf, sizeof buf);
}

}  // namespace clsi
