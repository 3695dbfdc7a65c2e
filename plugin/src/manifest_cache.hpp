// The service's memory of the distribution manifests it has read
// (dists/<sha256>/manifest.json, dist_store.hpp).
//
// A heavy distribution's manifest names every file it has: 5 MB of JSON for
// 17,000 files, a fifth of a second to parse and check, which every build
// that links it paid again. A published distribution never changes (only the
// service writes dists/, and a manifest is written before its directory is
// moved into place), so what was parsed once is kept, and reused only while
// the manifest is the same file: the same device, inode, size and ctime (which
// no one can set back). A manifest replaced or rewritten is read again, and
// checked again as if a stranger had written it.
//
// Bounded by the files the kept manifests name, least recently used first out.
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

namespace clsi::venv {

struct Dist;

class ManifestCache {
 public:
  explicit ManifestCache(std::size_t max_files) : max_files_(max_files) {}

  // What was parsed from the file `st` describes; null when it was not, or
  // the file changed since.
  [[nodiscard]] std::shared_ptr<const Dist> find(const struct stat& st);
  void put(const struct stat& st, std::shared_ptr<const Dist> dist);

  [[nodiscard]] std::size_t entries() const;
  [[nodiscard]] std::size_t files() const;

  // The one the build service uses: at most 100,000 paths (files, RECORD rows
  // and .pyc files). Measured: the heavy benchmark distribution's 52,000 took
  // the service from 7 MB to 44 MB resident, so at most about 70 MB.
  static ManifestCache& shared();

 private:
  using Key = std::tuple<std::uint64_t, std::uint64_t, std::int64_t, std::int64_t, std::int64_t>;
  struct Entry {
    std::shared_ptr<const Dist> dist;
    std::size_t files = 0;
    std::uint64_t used = 0;
  };
  static Key key_of(const struct stat& st);

  std::size_t max_files_;
  mutable std::mutex mu_;
  std::map<Key, Entry> entries_;
  std::size_t files_ = 0;
  std::uint64_t clock_ = 0;
};

}  // namespace clsi::venv
