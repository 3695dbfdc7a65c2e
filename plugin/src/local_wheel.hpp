// A wheel of a file:// index taken by the service itself, instead of by
// `pip download`: copied into the build's own directory and hashed in the
// same pass, then kept only if its bytes have the sha256 the resolve chose.
// One read of the file, where pip download would start an interpreter, copy
// it and hash it, and the installer would hash it again to find it.
#pragma once

#include <optional>
#include <string>

#include "expected.hpp"

namespace clsi::venv {

// The local path of a `file:` URL (file:///p or file://localhost/p),
// percent-decoded; nullopt for anything else (another host, a relative or
// empty path, a NUL, a query or fragment).
std::optional<std::string> local_path_of_url(const std::string& url);

struct LocalWheel {
  std::string path;       // the copy, when its sha256 is the one expected
  bool mismatch = false;  // the bytes have another sha256: the copy is gone
};

// Copies the regular file `from` to `to` (created; not there before),
// checking its bytes against `sha256_hex`.
Expected<LocalWheel> copy_local_wheel(const std::string& from, const std::string& to,
                                      const std::string& sha256_hex);

}  // namespace clsi::venv
