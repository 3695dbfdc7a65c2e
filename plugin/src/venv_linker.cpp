#include "venv_linker.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <regex>
#include <set>
#include <system_error>
#include <thread>
#include <tuple>

#include "clsi/errno_text.hpp"
#include "clsi/unique_fd.hpp"
#include "digest.hpp"
#include "dir_maker.hpp"
#include "dist_info.hpp"

namespace clsi::venv {
namespace {

// Fewer links than this are made on the calling thread alone.
constexpr std::size_t kParallelLinks = 2000;

// distlib: a shebang longer than this (or with a space) goes through /bin/sh.
constexpr std::size_t kMaxShebang = 127;
constexpr const char* kInstaller = "clsi-venvs\n";

std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto at = path.find('/', start);
    auto part = path.substr(start, at == std::string::npos ? std::string::npos : at - start);
    if (!part.empty() && part != ".") out.push_back(part);
    if (at == std::string::npos) break;
    start = at + 1;
  }
  return out;
}

// os.path.relpath(target, base) for paths relative to one root.
std::string relpath(const std::string& target, const std::string& base) {
  auto t = components(target);
  auto b = components(base);
  std::size_t common = 0;
  while (common < t.size() && common < b.size() && t[common] == b[common])
    ++common;
  std::string out;
  for (std::size_t i = common; i < b.size(); ++i)
    out += "../";
  for (std::size_t i = common; i < t.size(); ++i)
    out += t[i] + (i + 1 < t.size() ? "/" : "");
  if (out.empty()) return ".";
  if (out.back() == '/') out.pop_back();
  return out;
}

Expected<std::string> read_all(int fd, const std::string& what) {
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{"cannot read " + what + ": " + clsi::errno_text(errno)};
    if (n == 0) return text;
    text.append(buf, static_cast<std::size_t>(n));
  }
}

bool write_all(int fd, const char* p, std::size_t left) {
  while (left > 0) {
    ssize_t w = ::write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    p += w;
    left -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

std::string console_script_text(const std::string& executable, const ScriptEntry& entry) {
  std::string exe = executable;
  if (exe.find(' ') != std::string::npos) exe = "\"" + exe + "\"";
  std::string shebang;
  if (exe.find(' ') == std::string::npos && exe.size() + 3 <= kMaxShebang) {
    shebang = "#!" + exe + "\n";
  } else {
    shebang = "#!/bin/sh\n'''exec' " + exe + " \"$0\" \"$@\"\n' '''";
  }
  return shebang +
         "# -*- coding: utf-8 -*-\n"
         "import re\n"
         "import sys\n"
         "from " +
         entry.module + " import " + entry.import_name +
         "\n"
         "if __name__ == '__main__':\n"
         "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
         "    sys.exit(" +
         entry.func + "())\n";
}

std::map<std::string, std::string> console_script_names(std::map<std::string, std::string> console,
                                                        const std::string& python) {
  std::map<std::string, std::string> out;
  const std::string major = python.substr(0, python.find('.'));
  if (auto pip = console.find("pip"); pip != console.end()) {
    std::string value = pip->second;
    console.erase(pip);
    out["pip"] = value;
    out["pip" + major] = value;
    out["pip" + python] = value;
    static const std::regex versioned(R"(pip(\d+(\.\d+)?)?)");
    for (auto it = console.begin(); it != console.end();)
      it = std::regex_match(it->first, versioned) ? console.erase(it) : std::next(it);
  }
  if (auto ei = console.find("easy_install"); ei != console.end()) {
    std::string value = ei->second;
    console.erase(ei);
    out["easy_install"] = value;
    out["easy_install-" + python] = value;
    static const std::regex versioned(R"(easy_install(-\d+\.\d+)?)");
    for (auto it = console.begin(); it != console.end();)
      it = std::regex_match(it->first, versioned) ? console.erase(it) : std::next(it);
  }
  for (auto& [name, value] : console)
    out.emplace(name, value);
  return out;
}

namespace {

// Where pip puts a file of a wheel part, relative to the venv.
std::string venv_rel_of(const WheelContents& c, const std::string& site_packages,
                        const std::string& python, const std::string& install_name,
                        const std::string& part, const std::string& rel) {
  if (part == "lib") return site_packages + "/" + rel;
  if (part == "scripts") return "bin/" + rel;
  if (part == "headers") {
    return "include/site/python" + python + "/" + (install_name.empty() ? c.name : install_name) +
           "/" + rel;
  }
  return rel;  // data: the venv itself
}

// pip's bookkeeping (operations/install/wheel.py): archive path -> RECORD
// path, in the order pip meets them.
struct Installed {
  std::map<std::string, std::string> path;
  std::vector<std::string> order;
  void note(const std::string& key, const std::string& record_path) {
    if (path.emplace(key, record_path).second) {
      order.push_back(key);
    } else {
      path[key] = record_path;
    }
  }
};

Installed installed_of(const Dist& dist, const std::string& site_packages,
                       const std::string& python, const std::string& install_name) {
  const WheelContents& c = dist.contents;
  Installed out;
  for (const auto& f : c.files) {
    if (f.skipped) continue;
    out.note(
        f.archive_path,
        relpath(venv_rel_of(c, site_packages, python, install_name, f.part, f.rel), site_packages));
  }
  for (const auto& pyc : dist.pycs) {
    const auto slash = pyc.find('/');
    const std::string vrel = venv_rel_of(c, site_packages, python, install_name,
                                         pyc.substr(0, slash), pyc.substr(slash + 1));
    out.note("/" + vrel, relpath(vrel, site_packages));  // pip's key is the absolute path
  }
  return out;
}

// RECORD as pip writes it: the wheel's rows at the venv's paths (a changed
// file hashed again), the generated files, then what the wheel's RECORD did
// not name, with no hash; sorted.
std::string record_text(const WheelContents& c, Installed installed,
                        const std::map<std::string, std::string>& changed,
                        const std::vector<std::pair<std::string, std::string>>& generated) {
  std::vector<std::tuple<std::string, std::string, std::string>> rows;
  for (const auto& row : c.record) {
    std::string path = row.path;
    if (auto at = installed.path.find(row.path); at != installed.path.end()) {
      path = at->second;
      installed.path.erase(at);
    }
    if (auto ch = changed.find(path); ch != changed.end()) {
      rows.emplace_back(path, record_hash_of(ch->second), std::to_string(ch->second.size()));
    } else {
      rows.emplace_back(path, row.hash, row.size);
    }
  }
  for (const auto& [path, content] : generated)
    rows.emplace_back(path, record_hash_of(content), std::to_string(content.size()));
  for (const auto& key : installed.order)
    if (auto at = installed.path.find(key); at != installed.path.end())
      rows.emplace_back(at->second, "", "");
  std::sort(rows.begin(), rows.end());
  std::string record;
  for (const auto& [path, hash, size] : rows)
    record += record_csv_row({path, hash, size});
  return record;
}

// A distribution whose RECORD is the same in every venv of one interpreter
// version: nothing of it is written per venv but INSTALLER, REQUESTED and
// RECORD (no scripts, no "#!python" file, no headers directory named by the
// requirement's spelling).
bool same_in_every_venv(const WheelContents& c) {
  if (!c.console_scripts.empty() || !c.gui_scripts.empty()) return false;
  return std::none_of(c.files.begin(), c.files.end(), [](const WheelFile& f) {
    return !f.skipped && (f.python_shebang || f.part == "headers");
  });
}

std::vector<std::pair<std::string, std::string>> own_info_files(const WheelContents& c,
                                                                bool requested) {
  std::vector<std::pair<std::string, std::string>> out = {{c.dist_info + "/INSTALLER", kInstaller}};
  if (requested) out.emplace_back(c.dist_info + "/REQUESTED", "");
  return out;
}

}  // namespace

// The store's `rel` in the distribution holds exactly `content`.
bool holds(const DistLease& lease, const char* rel, const std::string& content) {
  UniqueFd fd(::openat(lease.dir_fd(), rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_size != static_cast<off_t>(content.size()))
    return false;
  auto text = read_all(fd.get(), rel);
  return text && *text == content;
}

std::optional<std::string> shared_record(const Dist& dist, bool requested,
                                         const std::string& site_packages,
                                         const std::string& python) {
  if (!same_in_every_venv(dist.contents)) return std::nullopt;
  return record_text(dist.contents, installed_of(dist, site_packages, python, {}), {},
                     own_info_files(dist.contents, requested));
}

Expected<bool> write_shared_own_files(const std::string& staged, const Dist& dist) {
  const std::string site_packages = "lib/python" + dist.python + "/site-packages";
  auto requested = shared_record(dist, true, site_packages, dist.python);
  auto dependency = shared_record(dist, false, site_packages, dist.python);
  if (!requested || !dependency) return false;
  UniqueFd dir(::open(staged.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir || ::mkdirat(dir.get(), "own", 0755) != 0)
    return Error{"cannot create " + staged + "/own: " + clsi::errno_text(errno)};
  for (const auto& [rel, content] :
       {std::pair<const char*, std::string_view>{kSharedInstaller, kInstaller},
        {kSharedRecordRequested, *requested},
        {kSharedRecordDependency, *dependency}}) {
    UniqueFd fd(
        ::openat(dir.get(), rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd || !write_all(fd.get(), content.data(), content.size()))
      return Error{"cannot write " + staged + "/" + rel + ": " + clsi::errno_text(errno)};
  }
  return true;
}

VenvLinker::VenvLinker(std::string venv, std::string site_packages, std::string python)
    : venv_(std::move(venv)),
      site_packages_(std::move(site_packages)),
      python_(std::move(python)),
      interpreter_(venv_ + "/bin/python3") {}

Expected<bool> VenvLinker::add(const DistLease& lease, bool requested,
                               const std::string& install_name) {
  const Dist& dist = lease.dist();
  const WheelContents& c = dist.contents;
  const std::string wheel = c.name + "-" + c.version;
  UniqueFd venv_fd(::open(venv_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!venv_fd) return Error{"cannot open the venv " + venv_ + ": " + clsi::errno_text(errno)};
  DirMaker dirs(venv_fd.get());

  auto venv_rel_of = [&](const std::string& part, const std::string& rel) {
    return clsi::venv::venv_rel_of(c, site_packages_, python_, install_name, part, rel);
  };
  // The directory of `vrel` (made) and its last component.
  auto parent_of = [&](const std::string& vrel, std::string& leaf) -> Expected<int> {
    auto slash = vrel.rfind('/');
    leaf = slash == std::string::npos ? vrel : vrel.substr(slash + 1);
    int dir = dirs.open(slash == std::string::npos ? std::string() : vrel.substr(0, slash));
    if (dir < 0) {
      return Error{"the wheel " + wheel + " cannot place " + printable(vrel) +
                   " in the venv: " + clsi::errno_text(errno) +
                   (errno == ELOOP || errno == ENOTDIR
                        ? " (a part of that path is a symbolic link or a file)"
                        : "")};
    }
    return dir;
  };
  // Writes one of the venv's own files (never through what is there: that
  // may be a link to the store).
  auto write_own = [&](const std::string& vrel, std::string_view content,
                       mode_t mode) -> Expected<bool> {
    std::string leaf;
    auto dir = parent_of(vrel, leaf);
    if (!dir) return Error{dir.error()};
    if (::unlinkat(*dir, leaf.c_str(), 0) != 0 && errno != ENOENT)
      return Error{"cannot replace " + printable(vrel) + ": " + clsi::errno_text(errno)};
    UniqueFd fd(
        ::openat(*dir, leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!fd || ::fchmod(fd.get(), mode) != 0 ||
        !write_all(fd.get(), content.data(), content.size()))
      return Error{"cannot write " + printable(vrel) + ": " + clsi::errno_text(errno)};
    ++stats_.written;
    ++stats_.files;
    stats_.bytes += static_cast<std::int64_t>(content.size());
    return true;
  };
  // Links the store's `src` (relative to the distribution) to `leaf` in the
  // venv's directory `dir` (`vrel` names it for errors), counting in `st`.
  // Safe to run on several threads at once for different paths.
  auto place_in = [&](int dir, const std::string& leaf, const std::string& src,
                      const std::string& vrel, LinkStats& st) -> Expected<bool> {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (::linkat(lease.dir_fd(), src.c_str(), dir, leaf.c_str(), 0) == 0) {
        ++st.linked;
        ++st.files;
        return true;
      }
      if (errno != EEXIST) break;
      // Another distribution's file of that name: the later one wins, as with pip.
      if (::unlinkat(dir, leaf.c_str(), 0) != 0)
        return Error{"the wheel " + wheel + " cannot replace " + printable(vrel) + ": " +
                     clsi::errno_text(errno)};
    }
    const int link_errno = errno;
    if (link_errno != EXDEV && link_errno != EPERM && link_errno != EMLINK)
      return Error{"cannot link " + printable(vrel) +
                   " from the store: " + clsi::errno_text(link_errno)};
    // Another filesystem (or links refused): a clone, else a copy, with the
    // store's mode and mtime (the .pyc files check the source's mtime).
    UniqueFd in(::openat(lease.dir_fd(), src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    struct stat sst {};
    if (!in || ::fstat(in.get(), &sst) != 0)
      return Error{"cannot read " + printable(src) + " in the store: " + clsi::errno_text(errno)};
    (void)::unlinkat(dir, leaf.c_str(), 0);
    UniqueFd out(::openat(dir, leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                          sst.st_mode & 0777));
    if (!out) return Error{"cannot write " + printable(vrel) + ": " + clsi::errno_text(errno)};
    if (::ioctl(out.get(), FICLONE, in.get()) == 0) {
      ++st.reflinked;
    } else {
      for (;;) {
        ssize_t n = ::copy_file_range(in.get(), nullptr, out.get(), nullptr, 1 << 30, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          auto text = read_all(in.get(), src);
          if (!text || !write_all(out.get(), text->data(), text->size()))
            return Error{"cannot copy " + printable(vrel) + ": " + clsi::errno_text(errno)};
          break;
        }
        if (n == 0) break;
      }
      ++st.copied;
    }
    const struct timespec times[2] = {sst.st_atim, sst.st_mtim};
    if (::fchmod(out.get(), sst.st_mode & 0777) != 0 || ::futimens(out.get(), times) != 0)
      return Error{"cannot copy " + printable(vrel) + ": " + clsi::errno_text(errno)};
    ++st.files;
    return true;
  };
  // Links the store's `src` (relative to the distribution) to `vrel`.
  auto place = [&](const std::string& src, const std::string& vrel) -> Expected<bool> {
    std::string leaf;
    auto dir = parent_of(vrel, leaf);
    if (!dir) return Error{dir.error()};
    return place_in(*dir, leaf, src, vrel, stats_);
  };

  // Rows whose file was changed (with its new bytes); files generated.
  std::map<std::string, std::string> changed;
  std::vector<std::pair<std::string, std::string>> generated;

  const std::string info = c.dist_info + "/";
  std::set<std::string> own_info = {info + "RECORD", info + "INSTALLER"};
  if (requested) own_info.insert(info + "REQUESTED");
  std::set<std::string> placed;  // venv paths done: a later file of one place wins in the store
  // The links to make, each venv path once: a later one of a path (the .pyc
  // compiled for a source, over one the wheel shipped) takes its place, as
  // with pip. Their directories are made first, one thread; then the links
  // (the most of a venv: 34,754 for the heavy benchmark wheel) on as many
  // threads as there are cores, up to 4, each directory at a time on one.
  struct Link {
    std::string src, vrel, leaf;
    int dir = -1;
  };
  std::vector<Link> links;
  std::map<std::string, std::size_t> link_of;  // vrel -> index in links
  auto to_link = [&](std::string src, std::string vrel) {
    auto [at, fresh] = link_of.emplace(vrel, links.size());
    if (fresh) {
      links.push_back({std::move(src), std::move(vrel), {}, -1});
    } else {
      links[at->second].src = std::move(src);
    }
  };
  auto link_all = [&]() -> Expected<bool> {
    for (auto& l : links) {
      auto dir = parent_of(l.vrel, l.leaf);
      if (!dir) return Error{dir.error()};
      l.dir = *dir;
    }
    const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
    const std::size_t workers = std::max<std::size_t>(
        1, links.size() < kParallelLinks ? 1 : std::min<std::size_t>({cores, 4, links.size()}));
    std::vector<LinkStats> counted(workers);
    std::vector<std::optional<Error>> failed(workers);
    std::atomic<bool> stop{false};
    // Links of one directory go to one worker: ext4 takes the directory's
    // lock for each link, so two workers in one directory would wait.
    auto work = [&](std::size_t w) {
      for (std::size_t i = 0; i < links.size() && !stop; ++i) {
        if (static_cast<std::size_t>(links[i].dir) % workers != w) continue;
        auto p = place_in(links[i].dir, links[i].leaf, links[i].src, links[i].vrel, counted[w]);
        if (!p) {
          failed[w] = Error{p.error()};
          stop = true;
        }
      }
    };
    if (workers == 1) {
      work(0);
    } else {
      std::vector<std::thread> threads;
      try {
        for (std::size_t w = 1; w < workers; ++w)
          threads.emplace_back(work, w);
      } catch (const std::system_error&) {  // no thread to be had: the rest here, below
      }
      work(0);
      for (auto& t : threads)
        t.join();
      for (std::size_t w = threads.size() + 1; w < workers; ++w)
        work(w);  // the workers that could not be started
    }
    for (std::size_t w = 0; w < workers; ++w) {
      if (failed[w]) return *failed[w];
      stats_.linked += counted[w].linked;
      stats_.reflinked += counted[w].reflinked;
      stats_.copied += counted[w].copied;
      stats_.files += counted[w].files;
    }
    return true;
  };
  for (auto it = c.files.rbegin(); it != c.files.rend(); ++it) {
    const WheelFile& f = *it;
    if (f.skipped) continue;
    const std::string vrel = venv_rel_of(f.part, f.rel);
    if (is_venv_own_file(vrel)) {
      return Error{"the wheel " + wheel + " would replace the venv's own " + printable(vrel)};
    }
    if (!placed.insert(vrel).second) continue;
    const std::string record_path = relpath(vrel, site_packages_);
    if (f.part == "lib" && own_info.count(f.rel)) continue;  // written below
    if (f.python_shebang) {
      UniqueFd in(::openat(lease.dir_fd(), (f.part + "/" + f.rel).c_str(),
                           O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!in) return Error{"cannot read " + printable(f.rel) + " in the store"};
      auto text = read_all(in.get(), f.rel);
      if (!text) return Error{text.error()};
      auto nl = text->find('\n');
      std::string fixed = "#!" + interpreter_ + "\n" +
                          (nl == std::string::npos ? std::string() : text->substr(nl + 1));
      if (auto w = write_own(vrel, fixed, f.executable ? 0755 : 0644); !w) return w;
      changed[record_path] = std::move(fixed);
      continue;
    }
    to_link(f.part + "/" + f.rel, vrel);
    stats_.bytes += f.size;
  }
  for (const auto& pyc : dist.pycs) {
    const auto slash = pyc.find('/');
    to_link(pyc, venv_rel_of(pyc.substr(0, slash), pyc.substr(slash + 1)));
  }
  if (dist.pyc_bytes >= 0) {
    stats_.bytes += dist.pyc_bytes;
  } else {
    stats_.bytes_known = false;
  }
  if (auto l = link_all(); !l) return l;

  // Entry points: pip's scripts, then its dist-info files.
  auto add_scripts = [&](const std::map<std::string, std::string>& group) -> Expected<bool> {
    for (const auto& [name, value] : group) {
      auto entry = parse_script_entry(value);
      if (!entry)
        return Error{"the wheel " + wheel + " has the entry point " + printable(name) + ": " +
                     entry.error()};
      const std::string vrel = "bin/" + name;
      if (is_venv_own_file(vrel))
        return Error{"the wheel " + wheel + " would replace the venv's own " + printable(vrel)};
      std::string text = console_script_text(interpreter_, *entry);
      if (auto w = write_own(vrel, text, 0755); !w) return w;
      generated.emplace_back(relpath(vrel, site_packages_), std::move(text));
    }
    return true;
  };
  if (auto s = add_scripts(console_script_names(c.console_scripts, python_)); !s) return s;
  if (auto s = add_scripts(c.gui_scripts); !s) return s;
  const std::string info_vrel = site_packages_ + "/" + c.dist_info;
  // INSTALLER, REQUESTED, RECORD: the store's copy where the distribution
  // holds one with these bytes (made when it was stored), else written.
  auto own_or_shared = [&](const std::string& vrel, const std::string& content,
                           const char* shared) -> Expected<bool> {
    if (shared != nullptr && same_in_every_venv(c) && holds(lease, shared, content))
      return place(shared, vrel);
    return write_own(vrel, content, 0644);
  };
  for (const auto& [rel, content] : own_info_files(c, requested)) {
    const bool installer = rel == c.dist_info + "/INSTALLER";
    if (auto w = own_or_shared(site_packages_ + "/" + rel, content,
                               installer ? kSharedInstaller : nullptr);
        !w)
      return w;
    generated.emplace_back(rel, content);
  }
  auto installed = installed_of(dist, site_packages_, python_, install_name);
  // The wheel's rows that name no file it placed are kept as they are
  // (pip's way): none may point outside the venv, or at its own files.
  for (const auto& row : c.record) {
    if (installed.path.count(row.path) != 0) continue;
    if (auto why = record_path_refusal(site_packages_, wheel, row.path); !why.empty())
      return Error{"the venv is refused: " + why};
  }
  const std::string record = record_text(c, std::move(installed), changed, generated);
  auto placed_record = own_or_shared(info_vrel + "/RECORD", record,
                                     requested ? kSharedRecordRequested : kSharedRecordDependency);
  stats_.directories += dirs.made();
  return placed_record;
}

}  // namespace clsi::venv
