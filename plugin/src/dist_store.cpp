#include "dist_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "clsi/errno_text.hpp"
#include "isolation.hpp"
#include "manifest_cache.hpp"

namespace clsi::venv {
namespace fs = std::filesystem;
namespace {

constexpr int kManifestFormat = 1;
constexpr std::size_t kMaxManifestBytes = std::size_t{64} * 1024 * 1024;

nlohmann::json to_json(const Dist& d) {
  const WheelContents& c = d.contents;
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : c.files) {
    files.push_back({{"archive_path", f.archive_path},
                     {"part", f.part},
                     {"rel", f.rel},
                     {"executable", f.executable},
                     {"size", f.size},
                     {"python_shebang", f.python_shebang},
                     {"skipped", f.skipped}});
  }
  nlohmann::json record = nlohmann::json::array();
  for (const auto& r : c.record)
    record.push_back({r.path, r.hash, r.size});
  return {{"format", kManifestFormat},
          {"sha256", d.sha256},
          {"python", d.python},
          {"name", c.name},
          {"version", c.version},
          {"dist_info", c.dist_info},
          {"bytes", c.bytes},
          {"files", files},
          {"record", record},
          {"console_scripts", c.console_scripts},
          {"gui_scripts", c.gui_scripts},
          {"pycs", d.pycs},
          {"pyc_bytes", d.pyc_bytes}};
}

// The manifest, checked as if a stranger had written it: every path is one
// a wheel could have had.
Expected<Dist> from_json(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    if (j.at("format").get<int>() != kManifestFormat) return Error{"of another format"};
    Dist d;
    d.sha256 = j.at("sha256").get<std::string>();
    d.python = j.at("python").get<std::string>();
    WheelContents& c = d.contents;
    c.name = j.at("name").get<std::string>();
    c.version = j.at("version").get<std::string>();
    c.dist_info = j.at("dist_info").get<std::string>();
    c.bytes = j.at("bytes").get<std::int64_t>();
    if (!bad_name(c.dist_info).empty() || c.dist_info.find('/') != std::string::npos)
      return Error{"names a bad dist-info directory"};
    for (const auto& f : j.at("files")) {
      WheelFile w;
      w.archive_path = f.at("archive_path").get<std::string>();
      w.part = f.at("part").get<std::string>();
      w.rel = f.at("rel").get<std::string>();
      w.executable = f.at("executable").get<bool>();
      w.size = f.at("size").get<std::int64_t>();
      w.python_shebang = f.at("python_shebang").get<bool>();
      w.skipped = f.at("skipped").get<bool>();
      bool part_ok = false;
      for (const char* p : kWheelParts)
        part_ok = part_ok || w.part == p;
      if (!part_ok || !bad_name(w.rel).empty()) return Error{"names a bad path"};
      c.files.push_back(std::move(w));
    }
    for (const auto& r : j.at("record")) {
      c.record.push_back(
          {r.at(0).get<std::string>(), r.at(1).get<std::string>(), r.at(2).get<std::string>()});
    }
    c.console_scripts = j.at("console_scripts").get<std::map<std::string, std::string>>();
    c.gui_scripts = j.at("gui_scripts").get<std::map<std::string, std::string>>();
    d.pycs = j.at("pycs").get<std::vector<std::string>>();
    if (auto b = j.find("pyc_bytes"); b != j.end()) d.pyc_bytes = b->get<std::int64_t>();
    for (const auto& p : d.pycs) {
      bool part_ok = false;
      for (const char* part : kWheelParts)
        part_ok = part_ok || p.rfind(std::string(part) + "/", 0) == 0;
      if (!part_ok || !bad_name(p).empty()) return Error{"names a bad path"};
    }
    return d;
  } catch (const nlohmann::json::exception& e) {
    return Error{std::string("cannot be read: ") + e.what()};
  }
}

// `st`: the file read.
Expected<std::string> read_at(int dir, const char* name, std::size_t max, struct stat& st) {
  UniqueFd fd(::openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return Error{"is missing"};
  if (static_cast<std::size_t>(st.st_size) > max) return Error{"is too large"};
  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t have = 0;
  while (have < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + have, text.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error{"cannot be read"};
    have += static_cast<std::size_t>(n);
  }
  return text;
}

// Every regular file under `root` read-only: 0444, 0555 when it has an x bit.
Expected<bool> make_read_only(const std::string& root) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; it != end; it.increment(ec)) {
    if (ec) return Error{"cannot walk " + root + ": " + ec.message()};
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    mode_t mode = (st.st_mode & 0111) != 0 ? 0555 : 0444;
    if (::chmod(it->path().c_str(), mode) != 0)
      return Error{"cannot make " + it->path().string() + " read-only: " + clsi::errno_text(errno)};
  }
  if (ec) return Error{"cannot walk " + root + ": " + ec.message()};
  return true;
}

// Moves `path` into trash/ and deletes it there.
Expected<bool> discard(const Store& store, const std::string& path, const std::string& tag) {
  std::string dest = store.trash_dir() + "/dist-" + tag + "-XXXXXX";
  if (::mkdtemp(dest.data()) == nullptr)
    return Error{"cannot move " + path + " out of the way: " + clsi::errno_text(errno)};
  if (::rename(path.c_str(), (dest + "/dist").c_str()) != 0) {
    int err = errno;
    ::rmdir(dest.c_str());
    if (err == ENOENT) return true;
    return Error{"cannot move " + path + " out of the way: " + clsi::errno_text(err)};
  }
  std::error_code ec;
  fs::remove_all(dest, ec);
  if (ec) return Error{"cannot delete " + dest + ": " + ec.message()};
  return true;
}

}  // namespace

bool is_sha256_hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string pyc_path(const std::string& rel, const std::string& python) {
  auto slash = rel.rfind('/');
  std::string dir = slash == std::string::npos ? std::string() : rel.substr(0, slash + 1);
  std::string stem = rel.substr(dir.size());
  stem.resize(stem.size() - 3);  // ".py"
  std::string tag = "cpython-";
  for (char c : python)
    if (c != '.') tag += c;
  return dir + "__pycache__/" + stem + "." + tag + ".pyc";
}

std::optional<DistLease> DistStore::open(const std::string& sha256,
                                         const std::string& python) const {
  if (!is_sha256_hex(sha256)) return std::nullopt;
  const std::string path = dir(sha256);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return std::nullopt;
  while (::flock(fd.get(), LOCK_SH) != 0) {
    if (errno != EINTR) return std::nullopt;
  }
  // Eviction may have moved it away while we waited for the lock.
  struct stat held {};
  struct stat now {};
  if (::fstat(fd.get(), &held) != 0 || ::lstat(path.c_str(), &now) != 0 ||
      held.st_dev != now.st_dev || held.st_ino != now.st_ino)
    return std::nullopt;
  // Read once per manifest file, while it stays the same file.
  std::shared_ptr<const Dist> dist;
  struct stat mst {};
  if (::fstatat(fd.get(), "manifest.json", &mst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(mst.st_mode))
    dist = ManifestCache::shared().find(mst);
  if (!dist) {
    auto text = read_at(fd.get(), "manifest.json", kMaxManifestBytes, mst);
    Expected<Dist> parsed = text ? from_json(*text) : Expected<Dist>(Error{text.error()});
    if (parsed && parsed->pyc_bytes < 0) {  // a manifest from before pyc_bytes: measured once
      parsed->pyc_bytes = 0;
      for (const auto& pyc : parsed->pycs) {
        struct stat pst {};
        if (::fstatat(fd.get(), pyc.c_str(), &pst, AT_SYMLINK_NOFOLLOW) == 0)
          parsed->pyc_bytes += pst.st_size;
      }
    }
    if (parsed) {
      dist = std::make_shared<const Dist>(std::move(*parsed));
      ManifestCache::shared().put(mst, dist);
    }
  }
  if (!dist || dist->sha256 != sha256) {
    fd.reset();
    (void)discard(store_, path, sha256.substr(0, 12));
    return std::nullopt;
  }
  // Compiled for another interpreter version: kept for the builds of that one.
  if (dist->python != python) return std::nullopt;
  return DistLease(std::move(fd), std::move(dist));
}

Expected<DistLease> DistStore::publish(const std::string& staged, const Dist& dist) const {
  if (!is_sha256_hex(dist.sha256)) return Error{"not a sha256: " + dist.sha256};
  if (auto ro = make_read_only(staged); !ro) return Error{ro.error()};
  const std::string manifest = staged + "/manifest.json";
  if (auto w = write_file_atomically(manifest, to_json(dist).dump() + "\n"); !w)
    return Error{w.error()};
  if (::chmod(manifest.c_str(), 0444) != 0)
    return Error{"cannot make " + manifest + " read-only: " + clsi::errno_text(errno)};
  // What was just written is what the open() below reads: not parsed again
  // (the move into place leaves the file as it is).
  auto known = std::make_shared<const Dist>(dist);
  if (struct stat mst{}; ::lstat(manifest.c_str(), &mst) == 0 && S_ISREG(mst.st_mode))
    ManifestCache::shared().put(mst, known);
  if (::mkdir(dir().c_str(), 0755) != 0 && errno != EEXIST)
    return Error{"cannot create " + dir() + ": " + clsi::errno_text(errno)};
  const std::string target = dir(dist.sha256);
  if (::rename(staged.c_str(), target.c_str()) != 0 && errno != EEXIST && errno != ENOTEMPTY)
    return Error{"cannot move the distribution into " + target + ": " + clsi::errno_text(errno)};
  // Ours, or the one another build put there first: the same bytes.
  if (auto lease = open(dist.sha256, dist.python)) return std::move(*lease);
  // The store's is for another interpreter version (or was evicted at once):
  // this build links from its own copy, which nothing else shares.
  const std::string& own = ::access(staged.c_str(), F_OK) == 0 ? staged : target;
  UniqueFd fd(::open(own.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Error{"the distribution " + target + " vanished as it was stored"};
  return DistLease(std::move(fd), std::move(known), false);
}

bool DistStore::linked(const std::string& sha256) const {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir(sha256), ec), end; it != end; it.increment(ec)) {
    if (ec) return true;  // unreadable: assume it is in use
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink > 1)
      return true;
  }
  return ec.operator bool();
}

std::vector<std::string> DistStore::list() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir(), ec)) {
    auto name = e.path().filename().string();
    if (is_sha256_hex(name)) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Expected<std::int64_t> DistStore::remove_if_unlinked(const std::string& sha256,
                                                     bool dry_run) const {
  if (!is_sha256_hex(sha256)) return Error{"not a distribution: " + sha256};
  const std::string path = dir(sha256);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return std::int64_t{0};
  // A build linking it holds it shared; it stays.
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return std::int64_t{0};
  if (linked(sha256)) return std::int64_t{0};
  std::int64_t bytes = disk_usage(path);
  if (dry_run) return bytes;
  if (auto d = discard(store_, path, sha256.substr(0, 12)); !d) return Error{d.error()};
  return bytes;
}

}  // namespace clsi::venv
