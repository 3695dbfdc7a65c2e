#include "key.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "clsi/unique_fd.hpp"
#include "config.hpp"
#include "digest.hpp"
#include "isolation.hpp"
#include "probe.hpp"
#include "store_trust.hpp"

namespace clsi::venv {

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return to_hex(h.finish());
}

std::string fnv1a64_hex(std::string_view data) {
  std::uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  (void)std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));  // fits
  return buf;
}

std::string KeyCache::key_for(const std::string& material) const {
  const std::string path = dir_ + "/" + fnv1a64_hex(material);
  std::string content;
  if (read_only_) {
    if (auto t = read_trusted_file(path, owner_, material.size() + 65)) content = std::move(*t);
  } else {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (fd) {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(fd.get(), buf, sizeof buf)) > 0 &&
             content.size() <= material.size() + 65) {
        content.append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  if (content.size() == material.size() + 65 && content[64] == '\n' &&
      content.compare(65, std::string::npos, material) == 0 &&
      content.find_first_not_of("0123456789abcdef") == 64) {
    return content.substr(0, 64);
  }
  std::string key = sha256_hex(material);
  if (!read_only_)
    (void)write_file_atomically(path,
                                key + "\n" + material);  // a failed write costs a digest later
  return key;
}

std::string redact_credentials(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  auto host_start = scheme + 3;
  auto path = url.find_first_of("/?#", host_start);
  auto at = url.rfind('@', path == std::string::npos ? url.size() : path);
  if (at == std::string::npos || at < host_start) return url;
  return url.substr(0, host_start) + "***@" + url.substr(at + 1);
}

std::string key_material(const std::vector<Requirement>& requirements,
                         const InterpreterFacts& python, const Config& config) {
  std::string m;
  m += kLayoutVersion;
  m += "\npython: " + python.version;
  m += "\npython-path: " + python.real_path;
  m += "\npip: " + python.pip_version;
  m += "\nindex-url: " + redact_credentials(config.index_url);
  m += std::string("\nonly-binary: ") + (config.only_binary ? "yes" : "no");
  m += std::string("\nrequire-hashes: ") + (config.require_hashes ? "yes" : "no");
  m += "\nrequirements:\n";
  for (const auto& r : requirements)
    m += r.canonical + "\n";  // already sorted, unique
  return m;
}

}  // namespace clsi::venv
