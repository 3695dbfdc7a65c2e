#include "wheel_archive.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <set>
#include <utility>

#include "clsi/errno_text.hpp"
#include "clsi/unique_fd.hpp"
#include "dir_maker.hpp"
#include "dist_info.hpp"

namespace clsi::venv {
namespace {

constexpr std::size_t kMaxSmallFile = std::size_t{1} << 20;  // WHEEL, entry_points.txt

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return std::string(s);
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    auto at = s.find(sep, start);
    out.push_back(
        s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

}  // namespace

std::string bad_name(std::string_view name) {
  if (name.empty()) return "an empty name";
  if (name.find('\0') != std::string_view::npos) return "a NUL byte";
  if (name.find('\\') != std::string_view::npos) return "a backslash";
  if (name.front() == '/') return "an absolute path";
  for (auto part : split(name, '/')) {
    if (part.empty()) return "an empty path component";
    if (part == "." || part == "..") return "a \"" + std::string(part) + "\" component";
  }
  return {};
}

namespace {

// "Header: value" lines up to the first blank one, keys lower-cased.
std::map<std::string, std::string> headers(std::string_view text) {
  std::map<std::string, std::string> out;
  for (auto line : split(text, '\n')) {
    std::string l = trim(line);
    if (l.empty()) break;
    auto colon = l.find(':');
    if (colon == std::string::npos) continue;
    std::string key = l.substr(0, colon);
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    out.emplace(key, trim(std::string_view(l).substr(colon + 1)));
  }
  return out;
}

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct ZipFileCloser {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};

}  // namespace

Expected<std::vector<RecordRow>> parse_record_csv(std::string_view text) {
  std::vector<RecordRow> rows;
  std::size_t i = 0;
  int line = 1;
  while (i < text.size()) {
    std::vector<std::string> fields;
    std::string field;
    bool quoted = false;
    bool row_done = false;
    while (!row_done) {
      if (i >= text.size()) {
        if (quoted) return Error{"line " + std::to_string(line) + ": a quote that is not closed"};
        fields.push_back(std::exchange(field, {}));
        break;
      }
      char c = text[i++];
      if (quoted) {
        if (c == '"') {
          if (i < text.size() && text[i] == '"') {
            field += '"';
            ++i;
          } else {
            quoted = false;
          }
        } else {
          if (c == '\n') ++line;
          field += c;
        }
      } else if (c == '"' && field.empty()) {
        quoted = true;
      } else if (c == ',') {
        fields.push_back(std::exchange(field, {}));
      } else if (c == '\n' || c == '\r') {
        if (c == '\r' && i < text.size() && text[i] == '\n') ++i;
        fields.push_back(std::exchange(field, {}));
        row_done = true;
        ++line;
      } else {
        field += c;
      }
    }
    if (fields.size() == 1 && fields[0].empty()) continue;  // a blank line
    RecordRow row;
    row.path = fields[0];
    if (fields.size() > 1) row.hash = fields[1];
    if (fields.size() > 2) row.size = fields[2];
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string record_csv_row(const RecordRow& row) {
  auto field = [](const std::string& f) {
    if (f.find_first_of(",\"\r\n") == std::string::npos) return f;
    std::string q = "\"";
    for (char c : f) {
      if (c == '"') q += '"';
      q += c;
    }
    return q + "\"";
  };
  return field(row.path) + "," + field(row.hash) + "," + field(row.size) + "\r\n";
}

std::map<std::string, std::string> entry_point_section(std::string_view text,
                                                       std::string_view section) {
  std::map<std::string, std::string> out;
  bool in = false;
  for (auto raw : split(text, '\n')) {
    std::string line = trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      in = trim(std::string_view(line).substr(1, line.size() - 2)) == section;
      continue;
    }
    if (!in) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    out.emplace(trim(std::string_view(line).substr(0, eq)),
                trim(std::string_view(line).substr(eq + 1)));
  }
  return out;
}

Expected<ScriptEntry> parse_script_entry(std::string_view value) {
  auto word = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' ||
           static_cast<unsigned char>(c) >= 0x80;
  };
  std::string v = trim(value);
  // "module:attr.attr", then optionally "[extra, ...]", which scripts ignore.
  std::size_t end = 0;
  while (end < v.size() && (word(v[end]) || v[end] == '.' || v[end] == ':'))
    ++end;
  std::string callable = v.substr(0, end);
  std::string rest = trim(std::string_view(v).substr(end));
  if (!rest.empty() && (rest.front() != '[' || rest.back() != ']'))
    return Error{"\"" + v + "\" is not an entry point (module:function [extras])"};
  auto colon = callable.find(':');
  if (colon == std::string::npos || callable.find(':', colon + 1) != std::string::npos)
    return Error{"\"" + v + "\" names no callable (module:function)"};
  ScriptEntry e;
  e.module = callable.substr(0, colon);
  e.func = callable.substr(colon + 1);
  for (const auto& dotted : {e.module, e.func}) {
    for (auto part : split(dotted, '.')) {
      if (part.empty() || std::isdigit(static_cast<unsigned char>(part.front())) != 0)
        return Error{"\"" + v + "\" is not an entry point (module:function [extras])"};
    }
  }
  e.import_name = e.func.substr(0, e.func.find('.'));
  return e;
}

Expected<WheelContents> unpack_wheel(const std::string& wheel_path, const std::string& dest,
                                     const UnpackLimits& limits) {
  int zerr = 0;
  std::unique_ptr<zip_t, ZipCloser> za(
      zip_open(wheel_path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &zerr));
  if (!za) {
    zip_error_t e;
    zip_error_init_with_code(&e, zerr);
    std::string why = zip_error_strerror(&e);
    zip_error_fini(&e);
    return Error{"is not a readable zip archive (" + why + ")"};
  }
  const zip_int64_t n = zip_get_num_entries(za.get(), 0);
  if (n < 0) return Error{"is not a readable zip archive"};

  // First the names: each checked, the dist-info directory found.
  struct Entry {
    zip_uint64_t index;
    std::string name;
  };
  std::vector<Entry> entries;
  std::set<std::string> names;
  std::set<std::string> info_dirs;
  for (zip_int64_t i = 0; i < n; ++i) {
    const char* raw = zip_get_name(za.get(), static_cast<zip_uint64_t>(i), ZIP_FL_ENC_GUESS);
    if (raw == nullptr) return Error{"has an entry without a name"};
    std::string name = raw;
    if (!names.insert(name).second) return Error{"holds " + printable(name) + " twice"};
    if (name.back() == '/') continue;  // a directory: made as files need them
    if (auto why = bad_name(name); !why.empty())
      return Error{"has a file named " + printable(name) + " (" + why + ")"};
    auto top = name.substr(0, name.find('/'));
    if (top.size() > 10 && top.compare(top.size() - 10, 10, ".dist-info") == 0 &&
        top.size() != name.size())
      info_dirs.insert(top);
    entries.push_back({static_cast<zip_uint64_t>(i), std::move(name)});
  }
  if (info_dirs.size() != 1) {
    return Error{info_dirs.empty()
                     ? std::string("has no .dist-info directory")
                     : "has " + std::to_string(info_dirs.size()) + " .dist-info directories"};
  }
  if (static_cast<std::int64_t>(entries.size()) > limits.max_files) {
    return Error{"holds " + std::to_string(entries.size()) + " files, over caps.max_venv_files (" +
                 std::to_string(limits.max_files) + ")"};
  }

  WheelContents out;
  out.dist_info = *info_dirs.begin();
  if (::mkdir(dest.c_str(), 0755) != 0 && errno != EEXIST)
    return Error{"cannot create " + dest + ": " + std::string(clsi::errno_text(errno))};
  UniqueFd root(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root) return Error{"cannot open " + dest + ": " + std::string(clsi::errno_text(errno))};
  DirMaker dirs(root.get());
  std::map<std::string, std::string> small;  // dist-info files read back: WHEEL, METADATA, ...
  std::vector<char> buf(std::size_t{1} << 16);

  for (const auto& e : entries) {
    WheelFile f;
    f.archive_path = e.name;
    auto slash = e.name.find('/');
    auto top = e.name.substr(0, slash);
    if (top.size() > 5 && top.compare(top.size() - 5, 5, ".data") == 0 &&
        slash != std::string::npos) {
      // PEP 491: <name>.data/<scheme>/<path>
      auto rest = e.name.substr(slash + 1);
      auto s2 = rest.find('/');
      if (s2 == std::string::npos)
        return Error{"has " + printable(e.name) + " directly in its .data directory"};
      auto scheme = rest.substr(0, s2);
      f.rel = rest.substr(s2 + 1);
      if (scheme == "purelib" || scheme == "platlib") {
        f.part = "lib";
      } else if (scheme == "scripts" || scheme == "headers" || scheme == "data") {
        f.part = scheme;
      } else {
        return Error{"has " + printable(e.name) + " in the unknown scheme " + printable(scheme) +
                     " (purelib, platlib, headers, scripts, data)"};
      }
      if (f.part == "scripts" && f.rel.find('/') != std::string::npos)
        return Error{"has the script " + printable(e.name) + " in a subdirectory"};
      std::string venv_rel = f.part == "scripts" ? "bin/" + f.rel
                             : f.part == "data"  ? f.rel
                                                 : std::string();
      if (!venv_rel.empty() && is_venv_own_file(venv_rel)) {
        return Error{"would replace the venv's own " + printable(venv_rel) + " (with " +
                     printable(e.name) + ")"};
      }
    } else {
      f.part = "lib";
      f.rel = e.name;
    }

    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(za.get(), e.index, 0, &st) != 0)
      return Error{"cannot read " + printable(e.name) + " in it"};
    zip_uint8_t opsys = 0;
    zip_uint32_t attr = 0;
    if (zip_file_get_external_attributes(za.get(), e.index, 0, &opsys, &attr) == 0 &&
        opsys == ZIP_OPSYS_UNIX) {
      // pip: executable when the mode is a regular file's with any x bit.
      const mode_t mode = attr >> 16;
      f.executable = S_ISREG(mode) && (mode & 0111) != 0;
    }

    const std::string target = f.part + "/" + f.rel;
    const auto cut = target.rfind('/');
    int dir = dirs.open(target.substr(0, cut));
    if (dir < 0) {
      return Error{"cannot unpack " + printable(e.name) + ": " +
                   std::string(clsi::errno_text(errno)) + " (a file and a directory of one name?)"};
    }
    const std::string leaf = target.substr(cut + 1);
    // A later file of the same place wins, as with pip.
    (void)::unlinkat(dir, leaf.c_str(), 0);
    // pip's modes: the default, plus x for all when the archive's has one.
    const mode_t mode = f.executable ? 0755 : 0644;
    UniqueFd out_fd(
        ::openat(dir, leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!out_fd || ::fchmod(out_fd.get(), mode) != 0) {
      return Error{"cannot unpack " + printable(e.name) + ": " +
                   std::string(clsi::errno_text(errno))};
    }
    std::unique_ptr<zip_file_t, ZipFileCloser> zf(zip_fopen_index(za.get(), e.index, 0));
    if (!zf) {
      return Error{"cannot read " + printable(e.name) + " in it (" +
                   zip_error_strerror(zip_get_error(za.get())) + ")"};
    }
    const bool keep_text =
        f.part == "lib" && e.name.compare(0, out.dist_info.size() + 1, out.dist_info + "/") == 0;
    std::string text;
    bool first = true;
    for (;;) {
      zip_int64_t got = zip_fread(zf.get(), buf.data(), buf.size());
      if (got < 0) {
        return Error{"cannot read " + printable(e.name) + " in it (" + zip_file_strerror(zf.get()) +
                     ")"};
      }
      if (got == 0) break;
      if (first && f.part == "scripts") {
        f.python_shebang =
            std::string_view(buf.data(), static_cast<std::size_t>(got)).substr(0, 8) == "#!python";
      }
      first = false;
      f.size += got;
      out.bytes += got;
      if (out.bytes > limits.max_bytes) {
        return Error{"unpacks to more than caps.max_venv_mb (" +
                     std::to_string(limits.max_bytes / (std::int64_t{1024} * 1024)) + " MB)"};
      }
      if (keep_text && text.size() < kMaxRecordBytes)
        text.append(buf.data(), static_cast<std::size_t>(got));
      const char* p = buf.data();
      auto left = static_cast<std::size_t>(got);
      while (left > 0) {
        ssize_t w = ::write(out_fd.get(), p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          return Error{"cannot unpack " + printable(e.name) + ": " +
                       std::string(clsi::errno_text(errno))};
        }
        p += w;
        left -= static_cast<std::size_t>(w);
      }
    }
    if (keep_text) small[e.name.substr(out.dist_info.size() + 1)] = std::move(text);
    out.files.push_back(std::move(f));
  }

  // The dist-info's own files: which wheel this is.
  auto wheel = small.find("WHEEL");
  if (wheel == small.end()) return Error{"has no " + out.dist_info + "/WHEEL"};
  auto wh = headers(wheel->second);
  const std::string& wv = wh["wheel-version"];
  if (wv.empty() || wv.substr(0, wv.find('.')) != "1")
    return Error{"has Wheel-Version " + printable(wv) + " (only 1.x is known)"};
  auto metadata = small.find("METADATA");
  if (metadata == small.end()) return Error{"has no " + out.dist_info + "/METADATA"};
  auto meta = parse_metadata(std::string_view(metadata->second).substr(0, kMaxMetadataHeaderBytes));
  if (!meta) return Error{"has a METADATA that " + meta.error()};
  out.name = meta->name;
  out.version = meta->version;
  if (auto rec = small.find("RECORD"); rec != small.end()) {
    auto rows = parse_record_csv(rec->second);
    if (!rows) return Error{"has a RECORD that cannot be read: " + rows.error()};
    out.record = std::move(*rows);
  }
  if (auto ep = small.find("entry_points.txt"); ep != small.end()) {
    out.console_scripts = entry_point_section(ep->second, "console_scripts");
    out.gui_scripts = entry_point_section(ep->second, "gui_scripts");
    for (const auto* group : {&out.console_scripts, &out.gui_scripts}) {
      for (const auto& [name, value] : *group) {
        if (!bad_name(name).empty() || name.find('/') != std::string::npos || name.front() == '-') {
          return Error{"has an entry point named " + printable(name) +
                       ", which is not a file name"};
        }
        if (is_venv_own_file("bin/" + name))
          return Error{"has an entry point that would replace the venv's own bin/" +
                       printable(name)};
        if (auto parsed = parse_script_entry(value); !parsed)
          return Error{"has the entry point " + printable(name) + ": " + parsed.error()};
      }
    }
  }
  // pip skips setuptools' wrappers for the entry points (it writes its own).
  auto is_wrapper = [&](const std::string& rel) {
    std::string base = rel;
    for (std::string_view suffix : {".exe", "-script.py", ".pya"}) {
      if (base.size() > suffix.size() &&
          std::equal(suffix.rbegin(), suffix.rend(), base.rbegin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) ==
                   std::tolower(static_cast<unsigned char>(b));
          })) {
        base.resize(base.size() - suffix.size());
        break;
      }
    }
    return out.console_scripts.count(base) != 0 || out.gui_scripts.count(base) != 0;
  };
  for (auto& f : out.files)
    if (f.part == "scripts" && is_wrapper(f.rel)) f.skipped = true;
  return out;
}

}  // namespace clsi::venv
