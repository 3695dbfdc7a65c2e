#include "digest.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

#include "clsi/errno_text.hpp"
#include "clsi/unique_fd.hpp"

namespace clsi::venv {

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (ctx_->md == nullptr || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed (OpenSSL EVP)");
}
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;
Sha256::~Sha256() = default;

void Sha256::update(const void* data, std::size_t size) {
  if (EVP_DigestUpdate(ctx_->md, data, size) != 1)
    throw std::runtime_error("SHA-256 failed (OpenSSL EVP)");
}

std::array<unsigned char, 32> Sha256::finish() {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_->md, out.data(), &len) != 1 || len != out.size())
    throw std::runtime_error("SHA-256 failed (OpenSSL EVP)");
  return out;
}

std::string to_hex(const std::array<unsigned char, 32>& digest) {
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (unsigned char c : digest) {
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  return out;
}

std::string record_hash(const std::array<unsigned char, 32>& digest) {
  static const char* const kB64 =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out = "sha256=";
  std::size_t i = 0;
  for (; i + 3 <= digest.size(); i += 3) {
    unsigned v = (digest[i] << 16) | (digest[i + 1] << 8) | digest[i + 2];
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  // 32 = 10 * 3 + 2: two bytes left, three characters, no padding.
  unsigned v = (digest[i] << 16) | (digest[i + 1] << 8);
  out += kB64[(v >> 18) & 63];
  out += kB64[(v >> 12) & 63];
  out += kB64[(v >> 6) & 63];
  return out;
}

Expected<std::string> file_sha256_hex(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0)
    return Error{"cannot read " + path + ": " + std::string(clsi::errno_text(errno))};
  if (!S_ISREG(st.st_mode)) return Error{path + " is not a regular file"};
  Sha256 h;
  std::string buf(std::size_t{1} << 20, '\0');
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{"cannot read " + path + ": " + std::string(clsi::errno_text(errno))};
    if (n == 0) break;
    h.update(buf.data(), static_cast<std::size_t>(n));
  }
  return to_hex(h.finish());
}

}  // namespace clsi::venv
