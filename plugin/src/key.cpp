#include "key.hpp"

#include <openssl/evp.h>

#include <memory>
#include <stdexcept>

#include "config.hpp"
#include "probe.hpp"

namespace clsi::venv {

std::string sha256_hex(std::string_view data) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest, &len) != 1) {
    throw std::runtime_error("SHA-256 failed (OpenSSL EVP)");
  }
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

std::string key_material(const std::vector<Requirement>& requirements,
                         const InterpreterFacts& python, const Config& config) {
  std::string m;
  m += kLayoutVersion;
  m += "\npython: " + python.version;
  m += "\npython-path: " + python.real_path;
  m += "\npip: " + python.pip_version;
  m += "\nindex-url: " + config.index_url;
  m += std::string("\nonly-binary: ") + (config.only_binary ? "yes" : "no");
  m += std::string("\nrequire-hashes: ") + (config.require_hashes ? "yes" : "no");
  m += "\nrequirements:\n";
  for (const auto& r : requirements)
    m += r.canonical + "\n";  // already sorted, unique
  return m;
}

}  // namespace clsi::venv
