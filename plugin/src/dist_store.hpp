// The store of installed distributions (docs/store.md):
//
//   dists/<wheel sha256>/            one wheel, unpacked and byte-compiled once
//   dists/<wheel sha256>/manifest.json   what it is (written before the move
//                                    into place, so a directory here is whole)
//   dists/<wheel sha256>/{lib,scripts,headers,data}/   its files (wheel_archive.hpp)
//
// Only the build service writes here. Every file is read-only (0444, 0555
// when executable): venvs hard-link them, so a file here is the very file
// every venv that has the distribution imports. A venv links what it needs
// while it holds a shared lock on the distribution's directory; eviction
// removes a distribution only under an exclusive lock, and only when no file
// of it has another link (no venv links it). A venv whose distribution was
// removed anyway keeps working: its links are its own.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "clsi/unique_fd.hpp"
#include "expected.hpp"
#include "store.hpp"
#include "wheel_archive.hpp"

namespace clsi::venv {

struct Dist {
  std::string sha256;
  WheelContents contents;
  std::vector<std::string> pycs;  // "<part>/<rel>" of each compiled source's .pyc
  std::int64_t pyc_bytes = -1;    // their sizes together; -1: not known
  std::string python;             // "3.11": what the .pyc files are for
};

// A distribution in the store, held (a shared lock on its directory) for as
// long as this lives.
class DistLease {
 public:
  // `dist` is never null: what the manifest says, shared with the service's
  // ManifestCache (manifest_cache.hpp).
  DistLease(UniqueFd dir, std::shared_ptr<const Dist> dist, bool shared = true)
      : dir_(std::move(dir)), dist_(std::move(dist)), shared_(shared) {}
  [[nodiscard]] int dir_fd() const { return dir_.get(); }
  [[nodiscard]] const Dist& dist() const { return *dist_; }
  // False: the build's own copy (the store holds this wheel compiled for
  // another interpreter version), shared with no other venv.
  [[nodiscard]] bool shared() const { return shared_; }

 private:
  UniqueFd dir_;
  std::shared_ptr<const Dist> dist_;
  bool shared_ = true;
};

class DistStore {
 public:
  explicit DistStore(const Store& store) : store_(store) {}

  [[nodiscard]] std::string dir() const { return store_.dists_dir(); }
  [[nodiscard]] std::string dir(const std::string& sha256) const { return dir() + "/" + sha256; }

  // The distribution, held, when the store has it for `python`; nullopt
  // when it has not. One whose manifest cannot be read, or that was made for
  // another interpreter version, is moved out of the way (and made again by
  // the caller).
  [[nodiscard]] std::optional<DistLease> open(const std::string& sha256,
                                              const std::string& python) const;

  // Makes `staged` (a directory holding an unpacked, byte-compiled wheel, on
  // the store's filesystem) read-only, writes its manifest and moves it into
  // place; when another build put the same distribution there first, that one
  // is used and `staged` is left to its owner to delete. When the store's is
  // for another interpreter version, the lease is on `staged` itself.
  [[nodiscard]] Expected<DistLease> publish(const std::string& staged, const Dist& dist) const;

  // Whether any file of the distribution has a link outside it (a venv).
  [[nodiscard]] bool linked(const std::string& sha256) const;

  // Distributions in the store (their sha256).
  [[nodiscard]] std::vector<std::string> list() const;

  // Removes the distribution if no venv links it and nobody holds it; the
  // bytes freed, 0 when it was kept. `dry_run`: only what it would free.
  [[nodiscard]] Expected<std::int64_t> remove_if_unlinked(const std::string& sha256,
                                                          bool dry_run) const;

 private:
  const Store& store_;
};

// The .pyc that `python` ("3.11") writes for the source `rel` ("a/b.py"):
// "a/__pycache__/b.cpython-311.pyc".
std::string pyc_path(const std::string& rel, const std::string& python);

// 64 lowercase hex digits.
bool is_sha256_hex(const std::string& s);

}  // namespace clsi::venv
