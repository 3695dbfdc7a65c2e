// SHA-256, streamed (OpenSSL EVP), and the two ways the store spells one: hex
// (keys, wheel hashes from an index) and RECORD's "sha256=<urlsafe base64,
// unpadded>" (PEP 376 / PEP 427).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>

#include "expected.hpp"

namespace clsi::venv {

class Sha256 {
 public:
  Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  ~Sha256();
  void update(const void* data, std::size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // The digest; the object is spent afterwards.
  std::array<unsigned char, 32> finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string to_hex(const std::array<unsigned char, 32>& digest);
// "sha256=..." as a RECORD row carries it.
std::string record_hash(const std::array<unsigned char, 32>& digest);
inline std::string record_hash_of(std::string_view data) {
  Sha256 h;
  h.update(data);
  return record_hash(h.finish());
}

// Hex SHA-256 of a regular file's bytes (not following a symlink).
Expected<std::string> file_sha256_hex(const std::string& path);

}  // namespace clsi::venv
