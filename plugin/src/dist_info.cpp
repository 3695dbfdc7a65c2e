#include "dist_info.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <set>
#include <utility>

#include "clsi/errno_text.hpp"
#include "clsi/unique_fd.hpp"

namespace clsi::venv {

// Names and paths come from wheels: keep control characters (a newline
// would forge a line of output.log) and unbounded lengths out of messages.
std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (s.size() > max) out += "...";
  return out;
}

namespace {

// Deeper than this, a walk stops with an error: each level holds one open
// descriptor, and no real package nests anywhere near as deep.
constexpr std::size_t kMaxDepth = 128;
// Symlinks followed while resolving one link, as the kernel's MAXSYMLINKS.
constexpr int kMaxHops = 40;
// The venv's own files are a few KB; larger ones are compared by metadata only.
constexpr off_t kMaxOwnFileBytes = off_t{1024} * 1024;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::vector<std::string> split_path(std::string_view p) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i <= p.size()) {
    auto j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    if (j > i) out.emplace_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string join_path(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : "/") + p;
  return out;
}

// Lexically applies `path` (relative) to `base`; false when it climbs above
// the root. "." and empty components are dropped.
bool apply_lexically(std::vector<std::string>& base, std::string_view path) {
  for (auto& c : split_path(path)) {
    if (c == ".") continue;
    if (c == "..") {
      if (base.empty()) return false;
      base.pop_back();
    } else {
      base.push_back(std::move(c));
    }
  }
  return true;
}

clsi::UniqueFd open_dir_at(int dirfd, const char* name) {
  return clsi::UniqueFd(::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

// Opens `rel` under the directory `root`, one component at a time, none of
// them a symlink.
Expected<clsi::UniqueFd> open_beneath(int root, const std::string& rel) {
  clsi::UniqueFd cur(::dup(root));
  if (!cur) return Error{"cannot open the venv: " + clsi::errno_text(errno)};
  for (const auto& c : split_path(rel)) {
    if (c == "." || c == "..") return Error{"'" + printable(rel) + "' is not a plain path"};
    clsi::UniqueFd next = open_dir_at(cur.get(), c.c_str());
    if (!next) {
      int err = errno;
      if (err == ELOOP || err == ENOTDIR) {
        return Error{printable(rel) + " is not a directory (or is a symbolic link)"};
      }
      return Error{"cannot open " + printable(rel) + ": " + clsi::errno_text(err)};
    }
    cur = std::move(next);
  }
  return cur;
}

Expected<clsi::UniqueFd> open_venv(const std::string& venv) {
  clsi::UniqueFd fd(::open(venv.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return Error{"cannot open the venv " + venv + ": " + clsi::errno_text(errno)};
  return fd;
}

// A listing of the directory `fd` (which stays open and unmoved).
DIR* open_listing(int fd) {
  int copy = ::dup(fd);
  if (copy < 0) return nullptr;
  DIR* d = ::fdopendir(copy);
  if (d == nullptr) {
    int err = errno;
    ::close(copy);
    errno = err;
    return nullptr;
  }
  ::rewinddir(d);  // the copy shares the file offset
  return d;
}

// The next entry of a listing, or nullptr at its end or on an error (errno
// says which, when the caller cleared it). readdir races only with calls on
// the same stream (glibc: "MT-Unsafe race:dirstream"; readdir(3)), and every
// DIR* here is opened by the function that reads it and never leaves its
// thread. std::filesystem's iterators, which call readdir too, cannot list a
// directory by descriptor, and these walks need that: nothing in a venv is
// resolved by path, since names come from wheels.
dirent* next_entry(DIR* dir) {
  return ::readdir(dir);  // NOLINT(concurrency-mt-unsafe): a stream of this thread's own, above
}

// Calls `visit(rel, st, parent_fd, name)` for every entry under `root_fd`,
// depth first, never following a symlink; stops when it returns false.
// Entries that vanish meanwhile (pip is still writing while the install is
// watched) are skipped. Returns whether the walk went to the end.
using Visitor = std::function<bool(const std::string& rel, const struct stat& st, int parent,
                                   const char* name)>;

// `descend` (optional): whether to list the directory `rel` too.
Expected<bool> walk_tree(int root_fd, const Visitor& visit,
                         const std::function<bool(const std::string& rel)>& descend = {}) {
  struct Frame {
    DIR* dir;
    std::string rel;
  };
  struct Stack {
    std::vector<Frame> frames;
    ~Stack() {
      for (auto& f : frames)
        ::closedir(f.dir);
    }
  } stack;
  DIR* top = open_listing(root_fd);
  if (top == nullptr) return Error{"cannot list the directory: " + clsi::errno_text(errno)};
  stack.frames.push_back({top, ""});
  while (!stack.frames.empty()) {
    DIR* dir = stack.frames.back().dir;
    errno = 0;
    dirent* e = next_entry(dir);
    if (e == nullptr) {
      if (errno != 0) {
        return Error{"cannot list " + printable(stack.frames.back().rel) + ": " +
                     clsi::errno_text(errno)};
      }
      ::closedir(dir);
      stack.frames.pop_back();
      continue;
    }
    const char* name = e->d_name;
    if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
    const std::string& parent_rel = stack.frames.back().rel;
    std::string rel = parent_rel.empty() ? name : parent_rel + "/" + name;
    struct stat st {};
    if (::fstatat(::dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return Error{"cannot read " + printable(rel) + ": " + clsi::errno_text(errno)};
    }
    if (!visit(rel, st, ::dirfd(dir), name)) return false;
    if (!S_ISDIR(st.st_mode) || (descend && !descend(rel))) continue;
    if (stack.frames.size() >= kMaxDepth) {
      return Error{"directories nest more than " + std::to_string(kMaxDepth) + " levels deep (at " +
                   printable(rel) + ")"};
    }
    clsi::UniqueFd sub = open_dir_at(::dirfd(dir), name);
    if (!sub) {
      // Gone or swapped for a link since fstatat: not ours to follow.
      if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) continue;
      return Error{"cannot open " + printable(rel) + ": " + clsi::errno_text(errno)};
    }
    DIR* d = ::fdopendir(sub.get());
    if (d == nullptr)
      return Error{"cannot list " + printable(rel) + ": " + clsi::errno_text(errno)};
    sub.release();
    stack.frames.push_back({d, std::move(rel)});
  }
  return true;
}

Expected<std::string> read_link_at(int parent, const char* name) {
  std::array<char, 4096> buf{};
  ssize_t n = ::readlinkat(parent, name, buf.data(), buf.size());
  if (n < 0) return Error{clsi::errno_text(errno)};
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

EntryState state_of(const struct stat& st) {
  EntryState s;
  s.type = st.st_mode & S_IFMT;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  s.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return s;
}

// Adds what a stat does not say: a link's target, the bytes of a small own
// file. Returns why it could not, or "".
std::string complete_state(EntryState& s, const std::string& rel, int parent, const char* name) {
  if (s.type == S_IFLNK) {
    auto t = read_link_at(parent, name);
    if (!t) return "cannot read the link " + printable(rel) + ": " + t.error();
    s.link_target = *t;
  } else if (s.type == S_IFREG && is_venv_own_file(rel) && s.size <= kMaxOwnFileBytes) {
    clsi::UniqueFd fd(
        ::openat(parent, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (!fd) return "cannot open " + printable(rel) + ": " + clsi::errno_text(errno);
    std::array<char, 8192> chunk{};
    for (;;) {
      ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return "cannot read " + printable(rel) + ": " + clsi::errno_text(errno);
      if (n == 0) break;
      s.content.append(chunk.data(), static_cast<std::size_t>(n));
      if (static_cast<off_t>(s.content.size()) > kMaxOwnFileBytes)
        return printable(rel) + " grew while being read";
    }
    s.has_content = true;
  }
  return {};
}

bool same_entry(const EntryState& a, const EntryState& b) {
  if (a.type != b.type || a.dev != b.dev || a.ino != b.ino) return false;
  // A directory's times change whenever something is added to it; only
  // whether it is still the same directory matters.
  if (a.type == S_IFDIR) return true;
  return a.size == b.size && a.mtime_ns == b.mtime_ns && a.ctime_ns == b.ctime_ns &&
         a.link_target == b.link_target && a.has_content == b.has_content && a.content == b.content;
}

// What must stay as `python -m venv` made it: its own files, the top-level
// entries and the directories down to site-packages (none may become a link).
bool is_guarded(std::string_view rel) {
  if (is_venv_own_file(rel) || rel.find('/') == std::string_view::npos) return true;
  if (rel.substr(0, 10) != "lib/python") return false;
  auto rest = rel.substr(4);
  auto slash = rest.find('/');
  return slash == std::string_view::npos || rest.substr(slash) == "/site-packages";
}

// Whether the symlink `link_rel` (relative to the venv) resolves inside the
// venv: follows links inside the venv, as the kernel would, without ever
// opening anything outside; a dangling rest is taken lexically.
bool link_stays_inside(int root_fd, const std::vector<std::string>& venv_abs,
                       const std::string& link_rel, const std::string& target) {
  std::vector<std::string> cur = split_path(link_rel);
  cur.pop_back();
  std::deque<std::string> todo;
  int hops = 0;
  auto push_target = [&](const std::string& t) {
    if (!t.empty() && t.front() == '/') {
      std::vector<std::string> abs;
      if (!apply_lexically(abs, t) || abs.size() < venv_abs.size() ||
          !std::equal(venv_abs.begin(), venv_abs.end(), abs.begin())) {
        return false;
      }
      cur.clear();
      abs.erase(abs.begin(), abs.begin() + static_cast<std::ptrdiff_t>(venv_abs.size()));
      todo.insert(todo.begin(), abs.begin(), abs.end());
      return true;
    }
    auto parts = split_path(t);
    todo.insert(todo.begin(), parts.begin(), parts.end());
    return true;
  };
  if (!push_target(target)) return false;
  while (!todo.empty()) {
    std::string c = std::move(todo.front());
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      if (cur.empty()) return false;
      cur.pop_back();
      continue;
    }
    cur.push_back(c);
    // Every component before the last is a real directory (links are
    // replaced as they are met), so the kernel follows nothing here.
    std::string path = join_path(cur);
    struct stat st {};
    if (::fstatat(root_fd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISLNK(st.st_mode)) {
      continue;
    }
    if (++hops > kMaxHops) return false;
    std::array<char, 4096> buf{};
    ssize_t n = ::readlinkat(root_fd, path.c_str(), buf.data(), buf.size());
    if (n < 0) return false;
    cur.pop_back();
    if (!push_target(std::string(buf.data(), static_cast<std::size_t>(n)))) return false;
  }
  return true;
}

// Reads the header block of `name` in `dirfd`: up to the first blank line,
// at most `max` bytes, from a regular file opened without following a link.
Expected<std::string> read_header_block(int dirfd, const char* name, std::size_t max) {
  clsi::UniqueFd fd(
      ::openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd) {
    int err = errno;
    if (err == ENOENT) return Error{std::string("no ") + name + " file"};
    if (err == ELOOP) return Error{std::string(name) + " is a symbolic link"};
    return Error{std::string("cannot open ") + name + ": " + clsi::errno_text(err)};
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Error{std::string(name) + " is not a regular file"};
  }
  auto too_long = [&] {
    return Error{std::string(name) + "'s headers are longer than " + std::to_string(max) +
                 " bytes"};
  };
  std::string buf;
  std::size_t scanned = 0;  // lines before this offset are known not blank
  std::array<char, 8192> chunk{};
  for (;;) {
    ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{std::string("cannot read ") + name + ": " + clsi::errno_text(errno)};
    if (n == 0) break;
    buf.append(chunk.data(), static_cast<std::size_t>(n));
    for (auto nl = buf.find('\n', scanned); nl != std::string::npos; nl = buf.find('\n', scanned)) {
      std::string_view line(buf.data() + scanned, nl - scanned);
      if (line.empty() || line == "\r") {
        if (scanned > max) return too_long();
        buf.resize(scanned);
        return buf;
      }
      scanned = nl + 1;
    }
    if (buf.size() > max) return too_long();
  }
  if (buf.size() > max) return too_long();
  return buf;
}

// Calls `on_path` with the first field of every row of a RECORD (CSV as
// Python's csv module writes it: quoted fields may hold commas, quotes and
// newlines). Stops at the first error `on_path` returns.
Expected<bool> for_each_record_path(int fd, std::size_t max_bytes,
                                    const std::function<std::string(const std::string&)>& on_path) {
  enum class S { start, plain, quoted, quote_in_quoted } s = S::start;
  std::string first;
  std::string field;
  int index = 0;
  std::size_t total = 0;
  std::string failure;
  auto end_field = [&] {
    if (index == 0) first = std::move(field);
    field.clear();
    ++index;
  };
  auto end_row = [&] {
    end_field();
    if (!first.empty()) failure = on_path(first);
    first.clear();
    index = 0;
    s = S::start;
    return failure.empty();
  };
  std::array<char, 65536> chunk{};
  for (;;) {
    ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{"cannot read RECORD: " + clsi::errno_text(errno)};
    if (n == 0) break;
    total += static_cast<std::size_t>(n);
    if (total > max_bytes) {
      return Error{"RECORD is larger than " +
                   std::to_string(max_bytes / (std::size_t{1024} * 1024)) + " MiB"};
    }
    for (ssize_t i = 0; i < n; ++i) {
      char c = chunk[static_cast<std::size_t>(i)];
      // Only the path is kept; a path longer than PATH_MAX is no path.
      if (index == 0 && field.size() > 4096)
        return Error{"RECORD has a path longer than 4096 bytes"};
      switch (s) {
        case S::start:
        case S::plain:
          if (c == '"' && s == S::start) {
            s = S::quoted;
          } else if (c == ',') {
            end_field();
            s = S::start;
          } else if (c == '\n') {
            if (!end_row()) return Error{failure};
          } else if (c != '\r') {
            if (index == 0) field += c;
            s = S::plain;
          }
          break;
        case S::quoted:
          if (c == '"') {
            s = S::quote_in_quoted;
          } else if (index == 0) {
            field += c;
          }
          break;
        case S::quote_in_quoted:
          if (c == '"') {
            if (index == 0) field += '"';
            s = S::quoted;
          } else if (c == ',') {
            end_field();
            s = S::start;
          } else if (c == '\n') {
            if (!end_row()) return Error{failure};
          } else if (c != '\r') {
            if (index == 0) field += c;
            s = S::plain;
          }
          break;
      }
    }
  }
  if (s == S::quoted) return Error{"RECORD ends inside a quoted field"};
  if (index > 0 || !field.empty()) {
    if (!end_row()) return Error{failure};
  }
  return true;
}

bool valid_project_name(std::string_view n) {
  if (n.empty() || n.size() > 200) return false;
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (!alnum(n.front()) || !alnum(n.back())) return false;
  return std::all_of(n.begin(), n.end(), [&](char c) {
    return (static_cast<unsigned char>(c) < 0x80 && alnum(c)) || c == '.' || c == '_' || c == '-';
  });
}

bool valid_version(std::string_view v) {
  if (v.empty() || v.size() > 200) return false;
  return std::all_of(v.begin(), v.end(), [](char c) {
    return (static_cast<unsigned char>(c) < 0x80 && std::isalnum(static_cast<unsigned char>(c))) ||
           c == '.' || c == '_' || c == '-' || c == '+' || c == '!';
  });
}

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

}  // namespace

bool is_venv_own_file(std::string_view rel) {
  if (rel == "pyvenv.cfg") return true;
  if (rel.substr(0, 4) != "bin/") return false;
  auto name = rel.substr(4);
  if (name.empty() || name.find('/') != std::string_view::npos) return false;
  // python, python3, python3.11: what a lookup of the interpreter finds.
  // Not python-argcomplete-check-easy-install-script and the like.
  if (name.substr(0, 6) == "python") {
    return name.substr(6).find_first_not_of("0123456789.") == std::string_view::npos;
  }
  auto l = lower(name);
  return l == "activate" || l.rfind("activate.", 0) == 0;
}

Expected<MetadataHeaders> parse_metadata(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) return Error{"holds a NUL byte"};
  MetadataHeaders h;
  bool have_name = false;
  bool have_version = false;
  std::string current;  // lower-case name of the header being read
  int line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // the end of the headers; the body follows
    if (line.front() == ' ' || line.front() == '\t') {
      if (current.empty()) {
        return Error{"line " + std::to_string(line_no) +
                     ": a continuation line with no header before it"};
      }
      if (current == "name" || current == "version") {
        return Error{"has its " + std::string(current == "name" ? "Name" : "Version") +
                     " header folded over several lines"};
      }
      continue;
    }
    auto colon = line.find(':');
    auto field = line.substr(0, colon == std::string_view::npos ? 0 : colon);
    bool field_ok = !field.empty() && std::all_of(field.begin(), field.end(),
                                                  [](char c) { return c > 0x20 && c < 0x7f; });
    if (colon == std::string_view::npos || !field_ok) {
      return Error{"line " + std::to_string(line_no) + ": not a 'Header: value' line"};
    }
    current = lower(field);
    std::string value = trim(line.substr(colon + 1));
    if (current == "name") {
      if (have_name) return Error{"has two Name headers"};
      have_name = true;
      h.name = value;
    } else if (current == "version") {
      if (have_version) return Error{"has two Version headers"};
      have_version = true;
      h.version = value;
    }
  }
  if (!have_name) return Error{"has no Name header"};
  if (!have_version) return Error{"has no Version header"};
  if (!valid_project_name(h.name)) {
    return Error{"has a Name that is not a project name: '" + printable(h.name) + "'"};
  }
  if (!valid_version(h.version)) {
    return Error{"has a Version that is not a version: '" + printable(h.version) + "'"};
  }
  return h;
}

std::string Distribution::wheel() const {
  for (std::string_view suffix : {".dist-info", ".egg-info"}) {
    if (ends_with(dir, suffix)) return printable(dir.substr(0, dir.size() - suffix.size()));
  }
  return printable(dir);
}

Expected<std::string> find_site_packages(const std::string& venv,
                                         const std::string& version_short) {
  auto root = open_venv(venv);
  if (!root) return Error{root.error()};
  auto lib = open_beneath(root->get(), "lib");
  if (!lib) return Error{"the venv has no lib/ directory: " + lib.error()};
  DIR* d = open_listing(lib->get());
  if (d == nullptr) return Error{"cannot list the venv's lib/: " + clsi::errno_text(errno)};
  std::vector<std::string> found;
  while (dirent* e = next_entry(d)) {
    std::string name = e->d_name;
    if (name.rfind("python", 0) != 0) continue;
    struct stat st {};
    std::string sp = name + "/site-packages";
    // Real directories only: a link could point anywhere.
    if (::fstatat(lib->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
      continue;
    if (::fstatat(lib->get(), sp.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
      continue;
    found.push_back(name);
  }
  ::closedir(d);
  std::sort(found.begin(), found.end());
  if (!version_short.empty()) {
    if (std::find(found.begin(), found.end(), "python" + version_short) == found.end()) {
      return Error{"the venv has no lib/python" + version_short + "/site-packages directory"};
    }
    return "lib/python" + version_short + "/site-packages";
  }
  if (found.size() != 1) {
    return Error{"the venv has " + std::to_string(found.size()) +
                 " lib/python*/site-packages directories, expected one"};
  }
  return "lib/" + found[0] + "/site-packages";
}

Expected<std::vector<Distribution>> read_distributions(const std::string& venv,
                                                       const std::string& site_packages,
                                                       std::size_t max_header_bytes) {
  auto root = open_venv(venv);
  if (!root) return Error{root.error()};
  auto sp = open_beneath(root->get(), site_packages);
  if (!sp) return Error{sp.error()};
  std::vector<std::string> names;
  {
    DIR* d = open_listing(sp->get());
    if (d == nullptr) return Error{"cannot list " + site_packages + ": " + clsi::errno_text(errno)};
    while (dirent* e = next_entry(d)) {
      std::string_view n = e->d_name;
      if (ends_with(n, ".dist-info") || ends_with(n, ".egg-info")) names.emplace_back(n);
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  std::vector<Distribution> out;
  for (const auto& dir : names) {
    auto bad = [&](const std::string& what) {
      return Error{"cannot read the installed distribution " + printable(dir) + ": " + what};
    };
    struct stat st {};
    if (::fstatat(sp->get(), dir.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return bad(clsi::errno_text(errno));
    }
    if (S_ISLNK(st.st_mode)) return bad("it is a symbolic link");
    Expected<std::string> headers = Error{""};
    const char* file = "METADATA";
    if (ends_with(dir, ".egg-info") && S_ISREG(st.st_mode)) {
      // A legacy egg-info may be a single PKG-INFO style file.
      headers = read_header_block(sp->get(), dir.c_str(), max_header_bytes);
      file = "the file";
    } else if (!S_ISDIR(st.st_mode)) {
      return bad("it is not a directory");
    } else {
      clsi::UniqueFd dfd = open_dir_at(sp->get(), dir.c_str());
      if (!dfd) return bad("cannot open it: " + clsi::errno_text(errno));
      if (ends_with(dir, ".egg-info")) file = "PKG-INFO";
      headers = read_header_block(dfd.get(), file, max_header_bytes);
    }
    if (!headers) return bad(headers.error());
    auto h = parse_metadata(*headers);
    if (!h) return bad(std::string(file) + " " + h.error());
    out.push_back({dir, h->name, h->version});
  }
  return out;
}

std::vector<std::string> installed_list(const std::vector<Distribution>& distributions) {
  std::vector<std::string> out;
  out.reserve(distributions.size());
  for (const auto& d : distributions)
    out.push_back(d.name + "==" + d.version);
  std::sort(out.begin(), out.end());
  return out;
}

Expected<VenvSnapshot> snapshot_venv(const std::string& venv) {
  auto root = open_venv(venv);
  if (!root) return Error{root.error()};
  VenvSnapshot snap;
  std::string failure;
  auto walked = walk_tree(root->get(), [&](const std::string& rel, const struct stat& st,
                                           int parent, const char* name) {
    EntryState s = state_of(st);
    failure = complete_state(s, rel, parent, name);
    if (!failure.empty()) return false;
    snap.entries.emplace(rel, std::move(s));
    return true;
  });
  if (!walked) return Error{"cannot list the new venv: " + walked.error()};
  if (!failure.empty()) return Error{failure};
  return snap;
}

Expected<TreeUsage> measure_tree(const std::string& root, std::int64_t max_entries) {
  auto fd = open_venv(root);
  if (!fd) return Error{fd.error()};
  TreeUsage u;
  struct stat st {};
  if (::fstat(fd->get(), &st) == 0) u.bytes += static_cast<std::int64_t>(st.st_blocks) * 512;
  auto walked =
      walk_tree(fd->get(), [&](const std::string&, const struct stat& s, int, const char*) {
        u.bytes += static_cast<std::int64_t>(s.st_blocks) * 512;
        if (++u.entries > max_entries) {
          u.over = true;
          return false;
        }
        return true;
      });
  if (!walked) return Error{walked.error()};
  return u;
}

namespace {

std::string outside_refusal(const std::string& wheel, std::string_view path) {
  return "the wheel " + wheel + " lists '" + printable(path) +
         "' in its RECORD, a path outside the venv (wheels may only write inside the venv)";
}

std::string own_file_refusal(const std::string& wheel, const std::string& rel) {
  return "the wheel " + wheel + " lists " + printable(rel) +
         " in its RECORD (wheels may not change the venv's interpreter, activation scripts or "
         "pyvenv.cfg)";
}

}  // namespace

std::string record_path_refusal(const std::string& site_packages, const std::string& wheel,
                                std::string_view path) {
  std::vector<std::string> parts = split_path(site_packages);
  if (path.empty() || path.front() == '/' || !apply_lexically(parts, path))
    return outside_refusal(wheel, path);
  if (std::string rel = join_path(parts); is_venv_own_file(rel))
    return own_file_refusal(wheel, rel);
  return {};
}

Expected<VenvContents> inspect_venv(const std::string& venv, const VenvSnapshot& before,
                                    const std::string& version_short, std::int64_t max_entries,
                                    const TreeUsage* linked) {
  auto root = open_venv(venv);
  if (!root) return Error{root.error()};
  std::vector<std::string> venv_abs;
  (void)apply_lexically(venv_abs, venv);

  VenvContents out;
  if (linked) out.usage = *linked;
  struct stat rst {};
  if (::fstat(root->get(), &rst) == 0)
    out.usage.bytes += static_cast<std::int64_t>(rst.st_blocks) * 512;
  if (out.usage.entries > max_entries) {
    out.usage.over = true;
    return out;
  }

  struct Change {
    std::string rel;
    std::string what;   // "replaced", "added", "removed"
    std::string wheel;  // whose RECORD lists it, when one does
  };
  struct LinkOut {
    std::string rel;
    std::string target;
    std::string wheel;
  };
  std::vector<Change> changes;
  std::vector<LinkOut> links_out;
  std::set<std::string> guarded_seen;
  std::string failure;

  // A linked venv: the directories venv made down to site-packages, whose
  // entries are guarded, not what the linker placed in them (counted by it).
  auto descend = [&](const std::string& rel) {
    return !linked || rel == "bin" ||
           (is_guarded(rel) && rel.find("/site-packages") == std::string::npos);
  };
  auto visit = [&](const std::string& rel, const struct stat& st, int parent, const char* name) {
    // In a linked venv, what venv did not make the linker placed, and counted.
    if (!linked || before.entries.count(rel) != 0) {
      out.usage.bytes += static_cast<std::int64_t>(st.st_blocks) * 512;
      if (++out.usage.entries > max_entries) {
        out.usage.over = true;
        return false;
      }
    }
    EntryState now = state_of(st);
    failure = complete_state(now, rel, parent, name);
    if (!failure.empty()) return false;
    if (S_ISLNK(st.st_mode)) {
      auto was = before.entries.find(rel);
      bool from_venv = was != before.entries.end() && was->second.type == S_IFLNK &&
                       was->second.link_target == now.link_target;
      if (!from_venv && !link_stays_inside(root->get(), venv_abs, rel, now.link_target)) {
        links_out.push_back({rel, now.link_target, {}});
      }
    }
    if (is_guarded(rel)) {
      auto was = before.entries.find(rel);
      if (was == before.entries.end()) {
        if (is_venv_own_file(rel)) changes.push_back({rel, "added", {}});
      } else {
        guarded_seen.insert(rel);
        if (!same_entry(was->second, now)) changes.push_back({rel, "replaced", {}});
      }
    }
    return true;
  };
  auto walked = walk_tree(root->get(), visit, descend);
  if (!walked) return Error{"cannot check the venv: " + walked.error()};
  if (!failure.empty()) return Error{"cannot check the venv: " + failure};
  if (out.usage.over) return out;
  for (const auto& [rel, state] : before.entries) {
    if (is_guarded(rel) && !guarded_seen.count(rel)) changes.push_back({rel, "removed", {}});
  }

  auto sp = find_site_packages(venv, version_short);
  if (!sp) return Error{sp.error()};
  out.site_packages = *sp;
  auto dists = read_distributions(venv, *sp);
  if (!dists) return Error{dists.error()};
  out.distributions = std::move(*dists);

  // Which wheel did it: the RECORD pip wrote lists every file it installed,
  // relative to site-packages. A RECORD path outside the venv is refused by
  // itself: it names a file pip wrote there, or one `pip uninstall` would
  // delete there. (The linker wrote a linked venv's RECORDs, and refused
  // such paths itself: record_path_refusal.)
  std::vector<std::string> refusals;
  auto sp_fd = open_beneath(root->get(), *sp);
  if (!sp_fd) return Error{sp_fd.error()};
  const auto sp_parts = split_path(*sp);
  for (const auto& d : out.distributions) {
    if (linked) break;
    if (!ends_with(d.dir, ".dist-info")) continue;
    auto bad = [&](const std::string& what) {
      return Error{"cannot read the installed distribution " + printable(d.dir) + ": " + what};
    };
    clsi::UniqueFd dfd = open_dir_at(sp_fd->get(), d.dir.c_str());
    if (!dfd) return bad("cannot open it: " + clsi::errno_text(errno));
    clsi::UniqueFd rec(
        ::openat(dfd.get(), "RECORD", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (!rec) {
      if (errno == ENOENT) continue;  // nothing listed, nothing to attribute
      return bad(errno == ELOOP ? "RECORD is a symbolic link" : "cannot open RECORD");
    }
    struct stat st {};
    if (::fstat(rec.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return bad("RECORD is not a regular file");
    }
    bool outside_reported = false;
    auto scanned = for_each_record_path(rec.get(), kMaxRecordBytes, [&](const std::string& p) {
      std::vector<std::string> parts = sp_parts;
      if (p.front() == '/' || !apply_lexically(parts, p)) {
        if (!outside_reported) {
          refusals.push_back(outside_refusal(d.wheel(), p));
          outside_reported = true;
        }
        return std::string();
      }
      std::string rel = join_path(parts);
      bool attributed = false;
      for (auto& c : changes) {
        if (c.rel == rel) {
          if (c.wheel.empty()) c.wheel = d.wheel();
          attributed = true;
        }
      }
      for (auto& l : links_out) {
        if (l.rel == rel && l.wheel.empty()) l.wheel = d.wheel();
      }
      if (!attributed && is_venv_own_file(rel))
        refusals.push_back(own_file_refusal(d.wheel(), rel));
      return std::string();
    });
    if (!scanned) return bad(scanned.error());
  }

  std::vector<std::string> reasons;
  for (const auto& c : changes) {
    std::string who = c.wheel.empty() ? "the install" : "the wheel " + c.wheel;
    std::string r = who + " " + c.what + " " + printable(c.rel);
    if (c.wheel.empty()) r += " (no wheel's RECORD lists it)";
    reasons.push_back(r +
                      " (wheels may not change the venv's interpreter, activation scripts, "
                      "pyvenv.cfg or top-level directories)");
  }
  reasons.insert(reasons.end(), refusals.begin(), refusals.end());
  for (const auto& l : links_out) {
    std::string who =
        l.wheel.empty() ? "the install created " : "the wheel " + l.wheel + " installed ";
    reasons.push_back(who + printable(l.rel) + ", a symbolic link pointing outside the venv (to " +
                      printable(l.target) + ")");
  }
  if (!reasons.empty()) {
    std::string msg = "the venv is refused: " + reasons[0];
    constexpr std::size_t kShown = 3;
    for (std::size_t i = 1; i < std::min(reasons.size(), kShown); ++i)
      msg += "; " + reasons[i];
    if (reasons.size() > kShown)
      msg += "; and " + std::to_string(reasons.size() - kShown) + " more";
    return Error{msg};
  }
  return out;
}

}  // namespace clsi::venv
