#include "dist_install.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include "digest.hpp"
#include "dist_info.hpp"
#include "installer.hpp"
#include "requirements.hpp"

namespace clsi::venv {
namespace fs = std::filesystem;
namespace {

std::string count_of(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

DistInstaller::DistInstaller(Setup setup, std::vector<ResolvedDistribution> chosen)
    : s_(std::move(setup)), dists_(*s_.store), chosen_(std::move(chosen)) {
  for (const auto& d : chosen_) {
    if (held_.count(d.sha256)) continue;
    if (auto lease = dists_.open(d.sha256, s_.python.version_short)) {
      held_.emplace(d.sha256, std::move(*lease));
    } else {
      missing_.push_back(d);
    }
  }
}

std::vector<std::string> DistInstaller::dist_hashes() const {
  std::vector<std::string> out;
  for (const auto& d : chosen_)
    out.push_back(d.sha256);
  return out;
}

std::optional<InstallError> DistInstaller::add_downloaded(
    const std::string& wheels_dir, const std::string& staging,
    const std::map<std::string, std::string>& fetched) {
  // pip names the files; they are known here only by their bytes.
  std::map<std::string, std::string> by_hash = fetched;
  if (by_hash.size() < missing_.size()) {
    std::set<std::string> taken;
    for (const auto& [sha, path] : fetched)
      taken.insert(path);
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(wheels_dir, ec)) {
      if (taken.count(e.path().string())) continue;  // checked as it was copied
      auto h = file_sha256_hex(e.path().string());
      if (h) by_hash.emplace(*h, e.path().string());
    }
    if (ec) return InstallError{"cannot read the downloaded wheels: " + ec.message(), true};
  }

  struct Staged {
    const ResolvedDistribution* d;
    std::string dir;
    Dist dist;
  };
  std::vector<Staged> staged;
  const std::int64_t mib = std::int64_t{1024} * 1024;
  const UnpackLimits limits{s_.config->caps.max_venv_files, s_.config->caps.max_venv_mb * mib};
  for (const auto& d : missing_) {
    const std::string wheel = d.name + "-" + d.version;
    auto file = by_hash.find(d.sha256);
    if (file == by_hash.end()) {
      return InstallError{"pip downloaded no file with the sha256 resolved for " + wheel, true};
    }
    Staged st{&d, staging + "/" + d.sha256.substr(0, 16), {}};
    auto contents = unpack_wheel(file->second, st.dir, limits);
    if (!contents) {
      return InstallError{"the wheel " + wheel + " " + contents.error(),
                          service_trouble(contents.error())};
    }
    st.dist.sha256 = d.sha256;
    st.dist.python = s_.python.version_short;
    st.dist.contents = std::move(*contents);
    s_.tell("  unpacked " + d.name + " " + d.version + ": " +
            count_of(st.dist.contents.files.size(), "file", "files") + ", " +
            human_size(st.dist.contents.bytes));
    staged.push_back(std::move(st));
  }
  if (staged.empty()) return std::nullopt;

  // One compileall for all of them, as pip compiles: every .py it
  // installs, timestamps in the .pyc (a hard link has its source's).
  SpawnOptions cc = s_.base;
  cc.executable = s_.python.real_path;
  cc.args = {"-I", "-m", "compileall", "-q", "-f", "-j", "0"};
  bool any = false;
  for (const auto& st : staged) {
    for (const char* part : kWheelParts) {
      if (::access((st.dir + "/" + part).c_str(), F_OK) != 0) continue;
      cc.args.push_back(st.dir + "/" + part);
      any = true;
    }
  }
  if (any) {
    s_.tell(note("byte-compiling " + count_of(staged.size(), "distribution", "distributions") +
                 " once for python " + s_.python.version_short));
    auto r = s_.runner(cc, s_.deadline, s_.detail, s_.tick);
    if (r.spawn_failed) return InstallError{"compileall could not start: " + r.spawn_error, true};
    if (r.timed_out)
      return InstallError{"byte-compiling did not finish within " + s_.deadline_reason, false};
    if (!r.stopped_because.empty()) return InstallError{r.stopped_because, false};
    if (WIFSIGNALED(r.wait_status))
      return InstallError{
          "byte-compiling was killed (signal " + std::to_string(WTERMSIG(r.wait_status)) + ")",
          true};
    // Exit status 1: a file that is not valid Python, which pip also leaves
    // uncompiled.
  }
  for (auto& st : staged) {
    // pip compiles every .py it installed, wherever it went; not a
    // "#!python" script (each venv has its own copy of that).
    std::map<std::string, std::int64_t> pycs;  // and their sizes, for the venvs' usage
    for (const auto& f : st.dist.contents.files) {
      if (f.skipped || f.python_shebang || f.rel.size() < 4 ||
          f.rel.compare(f.rel.size() - 3, 3, ".py") != 0)
        continue;
      std::string pyc = f.part + "/" + pyc_path(f.rel, s_.python.version_short);
      struct stat sb {};
      if (::lstat((st.dir + "/" + pyc).c_str(), &sb) == 0 && S_ISREG(sb.st_mode))
        pycs.emplace(std::move(pyc), sb.st_size);
    }
    st.dist.pyc_bytes = 0;
    for (auto& [pyc, size] : pycs) {
      st.dist.pycs.push_back(pyc);
      st.dist.pyc_bytes += size;
    }
    if (auto own = write_shared_own_files(st.dir, st.dist); !own)
      return InstallError{"cannot store " + st.d->name + ": " + own.error(),
                          service_trouble(own.error())};
    auto lease = dists_.publish(st.dir, st.dist);
    if (!lease) return InstallError{"cannot store " + st.d->name + ": " + lease.error(), true};
    held_.emplace(st.d->sha256, std::move(*lease));
  }
  missing_.clear();
  return std::nullopt;
}

std::optional<InstallError> DistInstaller::link(const std::string& venv,
                                                const std::string& site_packages) {
  VenvLinker linker(venv, site_packages, s_.python.version_short);
  for (const auto& d : chosen_) {
    auto lease = held_.find(d.sha256);
    if (lease == held_.end())
      return InstallError{"the store lost " + d.name + " " + d.version + " during the build", true};
    // The resolve did not hash the index's file when the store held its
    // sha256, and read its METADATA from the store's copy, or, when that
    // could not be read, from the file (pip_resolve_shim.hpp): the store's
    // copy must be what was resolved.
    const WheelContents& held = lease->second.dist().contents;
    if (normalize_name(held.name) != normalize_name(d.name) || held.version != d.version) {
      return InstallError{"the index's file for " + d.name + " " + d.version +
                              " claims the sha256 of " + printable(held.name) + " " +
                              printable(held.version) +
                              ", which the store holds; the index is inconsistent",
                          true};
    }
    if (auto added = linker.add(lease->second, d.requested, d.install_name); !added)
      return InstallError{added.error(), service_trouble(added.error())};
    if (linker.stats().files > s_.config->caps.max_venv_files) {
      return InstallError{"the venv would hold more than caps.max_venv_files (" +
                              std::to_string(s_.config->caps.max_venv_files) + " files)",
                          false};
    }
  }
  stats_ = linker.stats();
  const std::int64_t other_fs = stats_.reflinked + stats_.copied;
  if (other_fs > 0) {
    s_.tell(note("the store's dists/ and the venv are on different filesystems: " +
                 std::to_string(stats_.reflinked) + " file(s) reflinked, " +
                 std::to_string(stats_.copied) + " copied instead of hard-linked"));
  }
  return std::nullopt;
}

}  // namespace clsi::venv
