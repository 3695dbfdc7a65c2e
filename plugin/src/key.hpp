// The cache key: SHA-256 over everything that changes what gets installed.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "requirements.hpp"

namespace clsi::venv {

struct Config;
struct InterpreterFacts;

// Bumped when the store's layout or the way a venv is built changes.
// 2: every venv carries its own python3 kernelspec (kernelspec.hpp).
// 3: venvs are linked from dists/ (dist_store.hpp), not installed by pip.
inline constexpr std::string_view kLayoutVersion = "clsi-python-venv layout 3";

// Hex SHA-256 of `data` (OpenSSL EVP).
std::string sha256_hex(std::string_view data);

// "https://user:secret@host/simple" -> "https://***@host/simple": what the
// store may keep of an index URL (its files are readable by compile hosts).
std::string redact_credentials(const std::string& url);

// The exact text that is hashed; kept readable so a record can show it.
// Credentials in index_url are left out: they do not change what is installed.
std::string key_material(const std::vector<Requirement>& requirements,
                         const InterpreterFacts& python, const Config& config);

inline std::string venv_key(const std::vector<Requirement>& requirements,
                            const InterpreterFacts& python, const Config& config) {
  return sha256_hex(key_material(requirements, python, config));
}

// 16 hex digits of FNV-1a 64: a file name for a lookup whose content is then
// compared exactly. Not a security boundary; never the key itself.
std::string fnv1a64_hex(std::string_view data);

// Remembers material -> key in the store (keys/<fnv1a64 of material>, holding
// the key and the full material), so a cache hit needs no SHA-256: OpenSSL 3
// spends most of a millisecond initialising itself on a process's first
// digest, and clsi-runner is a fresh process per compile. An entry is used
// only when its material equals this compile's byte for byte.
class KeyCache {
 public:
  // The service's cache: computed keys are remembered.
  explicit KeyCache(std::string dir) : dir_(std::move(dir)) {}
  // A compile host's: entries count only when the store's owner wrote them
  // and nobody else can write them; nothing is written.
  KeyCache(std::string dir, uid_t owner) : dir_(std::move(dir)), read_only_(true), owner_(owner) {}
  // The SHA-256 key of `material`, from the cache or computed (and, for the
  // service, remembered).
  [[nodiscard]] std::string key_for(const std::string& material) const;

 private:
  std::string dir_;
  bool read_only_ = false;
  uid_t owner_ = 0;
};

inline std::string short_key(std::string_view key) {
  return std::string(key.substr(0, 12));
}

}  // namespace clsi::venv
