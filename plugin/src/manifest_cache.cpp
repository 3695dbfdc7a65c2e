#include "manifest_cache.hpp"

#include <algorithm>

#include "dist_store.hpp"

namespace clsi::venv {

ManifestCache::Key ManifestCache::key_of(const struct stat& st) {
  return {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
          static_cast<std::int64_t>(st.st_size), static_cast<std::int64_t>(st.st_ctim.tv_sec),
          static_cast<std::int64_t>(st.st_ctim.tv_nsec)};
}

std::shared_ptr<const Dist> ManifestCache::find(const struct stat& st) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key_of(st));
  if (it == entries_.end()) return nullptr;
  it->second.used = ++clock_;
  return it->second.dist;
}

void ManifestCache::put(const struct stat& st, std::shared_ptr<const Dist> dist) {
  if (!dist) return;
  // What a lease holds costs memory by the paths it names.
  const std::size_t files =
      1 + dist->contents.files.size() + dist->contents.record.size() + dist->pycs.size();
  if (files > max_files_) return;
  std::lock_guard lock(mu_);
  const Key key = key_of(st);
  if (auto it = entries_.find(key); it != entries_.end()) {
    files_ -= it->second.files;
    entries_.erase(it);
  }
  while (files_ + files > max_files_ && !entries_.empty()) {
    auto oldest = std::min_element(
        entries_.begin(), entries_.end(),
        [](const auto& a, const auto& b) { return a.second.used < b.second.used; });
    files_ -= oldest->second.files;
    entries_.erase(oldest);
  }
  entries_[key] = {std::move(dist), files, ++clock_};
  files_ += files;
}

std::size_t ManifestCache::entries() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

std::size_t ManifestCache::files() const {
  std::lock_guard lock(mu_);
  return files_;
}

ManifestCache& ManifestCache::shared() {
  static ManifestCache cache(100000);
  return cache;
}

}  // namespace clsi::venv
