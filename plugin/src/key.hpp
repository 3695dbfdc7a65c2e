// The cache key: SHA-256 over everything that changes what gets installed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "requirements.hpp"

namespace clsi::venv {

struct Config;
struct InterpreterFacts;

// Bumped when the store's layout or the way a venv is built changes.
inline constexpr std::string_view kLayoutVersion = "clsi-python-venv layout 1";

// Hex SHA-256 of `data` (OpenSSL EVP).
std::string sha256_hex(std::string_view data);

// The exact text that is hashed; kept readable so a record can show it.
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
  explicit KeyCache(std::string dir) : dir_(std::move(dir)) {}
  // The SHA-256 key of `material`, from the cache or computed and remembered.
  [[nodiscard]] std::string key_for(const std::string& material) const;

 private:
  std::string dir_;
};

inline std::string short_key(std::string_view key) {
  return std::string(key.substr(0, 12));
}

}  // namespace clsi::venv
