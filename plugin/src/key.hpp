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

inline std::string short_key(std::string_view key) {
  return std::string(key.substr(0, 12));
}

}  // namespace clsi::venv
