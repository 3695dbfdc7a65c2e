// "pip is the oracle" (issue 14): the venv the build service makes from a
// corpus of awkward wheels is compared with the venv pip itself installs from
// the same index into a plain `python3 -m venv`, file by file.
//
// The service keeps each wheel unpacked and byte-compiled once in
// <venvs_dir>/dists/<wheel sha256>/ and hard-links the venv's files from
// there; it writes the per-venv files itself (RECORD, INSTALLER, REQUESTED,
// entry-point scripts, `#!python` scripts of .data/scripts). What may differ
// from pip's venv, and nothing else:
//   - write bits of modes (linked files are 0444/0555 where pip's are 0644/0755);
//   - .pyc contents (co_filename is where they were compiled; same magic);
//   - the venv's own path, in bin/ files and pyvenv.cfg (the two venvs'
//     paths have the same length, so that pip's and distlib's choice of
//     shebang form, which depends on it, is the same for both);
//   - INSTALLER: "clsi-venvs\n" where pip writes "pip\n";
//   - RECORD rows of those files (hash, size), each still true of its file;
//   - the service's kernelspec, share/jupyter/kernels/python3/.
// Then both venvs' own interpreters must see the same distributions,
// versions, entry points and files through importlib.metadata, import every
// module of the corpus the same way and run the same scripts.
//
// The second test case checks that the store is really used: every file of
// the venv but the per-venv ones is a read-only hard link of a file under
// <venvs_dir>/dists/, and a second venv sharing the wheels links the same
// inodes.
//
// The wheels come from examples/tools/mkindex.py (keys entry_points,
// metadata, dist_info, data, binary_files, modes, dir_entries,
// root_is_purelib, many_files).
#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "venv_world.hpp"

using Catch::Contains;
using testenv::VenvWorld;
namespace fs = std::filesystem;

namespace {

// The corpus. pvl-tools is the awkward one: entry points (console and gui,
// one with extras, one a dotted attribute, a group that is no script), every
// .data scheme, a #!python and a #!/bin/sh script, a #!python script without
// its x bit, a setuptools wrapper for an entry point (pip skips it and keeps
// its RECORD row), a module that does not compile (no .pyc), a .py in
// .data/data (pip compiles it where it lands, share/), file names with a
// comma, a quote, a space and a non-ASCII letter (RECORD quoting), an
// executable package file, an empty file, bytes that are not UTF-8, zip
// directory entries (pip makes no empty directory), a subdirectory of the
// dist-info, a METADATA Name spelled unlike its canonical name, and the
// dependency chain pvl-tools -> pvl-base -> pvl-root (not requested).
const char* const kCorpus = R"JSON([
 {"name": "PVL_Tools", "version": "1.0", "requires": ["pvl-base>=1"],
  "metadata": "Summary: awkward on purpose\nProvides-Extra: extra1\n",
  "files": {
   "pvltools/__init__.py": "VERSION = '1.0'\n",
   "pvltools/cli.py": "import sys\n\ndef main():\n    print('pvl cli main', sys.argv[0].rsplit('/', 1)[-1])\n    return 0\n",
   "pvltools/mod.py": "class _Obj:\n    def method(self):\n        print('pvl dotted method')\n        return 0\n\nobj = _Obj()\n",
   "pvltools/gui.py": "def run():\n    print('pvl gui run')\n",
   "pvltools/broken.py": "print 'python 2 syntax: compiles nowhere'\n",
   "pvltools/run.sh": "#!/bin/sh\necho run.sh\n",
   "pvltools/empty.txt": "",
   "pvltools/data/a,b.txt": "comma\n",
   "pvltools/data/quote\"d.txt": "quote\n",
   "pvltools/data/with space.txt": "space\n",
   "pvltools/data/na\u00efve.txt": "utf-8 name\n",
   "pvltools/sub/deep/mod.py": "X = 1\n"},
  "binary_files": {"pvltools/blob.bin": "AAECf4D+/w0KAA=="},
  "modes": {"pvltools/run.sh": "755", "PVL_Tools-1.0.data/scripts/pvl-noexec": "644"},
  "dir_entries": ["pvltools/", "pvltools/emptydir/"],
  "dist_info": {"top_level.txt": "pvltools\n", "licenses/LICENSE.txt": "MIT-ish\n"},
  "entry_points": "[console_scripts]\npvl-tool = pvltools.cli:main\npvl-extra = pvltools.cli:main [extra1]\npvl-dotted = pvltools.mod:obj.method\n\n[gui_scripts]\npvl-gui = pvltools.gui:run\n\n[pvl.plugins]\nbuiltin = pvltools.cli:main\n",
  "data": {
   "scripts/pvl-hello": "#!python\nimport pvltools\nprint('hello from pvltools', pvltools.VERSION)\n",
   "scripts/pvl-sh": "#!/bin/sh\necho pvl-sh ran\n",
   "scripts/pvl-noexec": "#!python\nprint('not executable')\n",
   "scripts/pvl-tool": "#!python\n# a setuptools wrapper of an entry point: pip skips it\n",
   "data/share/pvl-tools/config.toml": "[pvl]\nx = 1\n",
   "data/share/pvl-tools/helper.py": "HELPER = 1\n",
   "headers/x.h": "#define PVL_X 1\n",
   "purelib/pvltools_pure/__init__.py": "PURE = 1\n",
   "platlib/pvltools_plat.py": "PLAT = 1\n"}},
 {"name": "pvl-base", "version": "1.0", "requires": ["pvl-root==2.0"],
  "files": {"pvlbase/__init__.py": "import pvlroot\nBASE = 'base on ' + pvlroot.ROOT\n"}},
 {"name": "pvl-root", "version": "2.0", "files": {"pvlroot/__init__.py": "ROOT = 'root 2.0'\n"}},
 {"name": "pvl-empty", "version": "1.0"},
 {"name": "pvl-nsp-a", "version": "1.0", "files": {"pvlnsp/a/__init__.py": "A = 'a'\n"}},
 {"name": "pvl-nsp-b", "version": "1.0", "files": {"pvlnsp/b/__init__.py": "B = 'b'\n"}},
 {"name": "pvl-many", "version": "1.0", "files": {"pvl_many/__init__.py": "MANY = 10000\n"},
  "many_files": 10000},
 {"name": "pvl-plat", "version": "1.0", "root_is_purelib": false,
  "files": {"pvlplat/__init__.py": "PLAT = 1\n"},
  "data": {"purelib/pvlplat_pure.py": "PURE = 1\n", "headers/pvlplat.h": "#define PVL_P 1\n"}},
 {"name": "pvl-pth", "version": "1.0", "files": {
   "pvl_pth.pth": "# a path line: site.py puts the directory on sys.path\npvl_pth_extra\n",
   "pvl_pth_extra/pvl_hidden.py": "HIDDEN = 'found through the .pth'\n",
   "pvl_pth-1.0-py3.11-nspkg.pth": "import sys, types, os;has_mfs = sys.version_info > (3, 5);p = os.path.join(sys._getframe(1).f_locals['sitedir'], *('pvllegacy',));importlib = has_mfs and __import__('importlib.util');has_mfs and __import__('importlib.machinery');m = has_mfs and sys.modules.setdefault('pvllegacy', importlib.util.module_from_spec(importlib.machinery.PathFinder.find_spec('pvllegacy', [os.path.dirname(p)])));m = m or sys.modules.setdefault('pvllegacy', types.ModuleType('pvllegacy'));mp = (m or []) and m.__dict__.setdefault('__path__',[]);(p not in mp) and mp.append(p)\n",
   "pvllegacy/sub/__init__.py": "LEGACY = 'legacy namespace'\n"}},
 {"name": "pvl-solo", "version": "0.1", "files": {"pvl_solo/__init__.py": "SOLO = 'solo'\n"}}
])JSON";

// Canonical and sorted, as the service writes them for pip: the oracle's
// pip reads the same lines (pip names the headers directory after them).
const char* const kRequirements =
    "pvl-empty\npvl-many\npvl-nsp-a\npvl-nsp-b\npvl-plat\npvl-pth\npvl-tools\n";
// The second venv: another set sharing most of the wheels, and one more.
const char* const kRequirements2 = "pvl-many\npvl-nsp-a\npvl-solo\npvl-tools\n";

// The dist-info directories of the distributions kRequirements names.
const std::set<std::string> kRequestedDistInfos = {
    "PVL_Tools-1.0.dist-info", "pvl_empty-1.0.dist-info", "pvl_many-1.0.dist-info",
    "pvl_nsp_a-1.0.dist-info", "pvl_nsp_b-1.0.dist-info", "pvl_plat-1.0.dist-info",
    "pvl_pth-1.0.dist-info"};
const std::set<std::string> kAllDistInfos = [] {
  auto s = kRequestedDistInfos;
  s.insert({"pvl_base-1.0.dist-info", "pvl_root-2.0.dist-info"});
  return s;
}();

const char* const kRenderCode =
    "import pvltools, pvlbase, pvlnsp.a, pvlnsp.b, pvl_many, pvl_hidden; "
    "print('RENDER ok', pvlbase.BASE)";
const char* const kRenderCode2 =
    "import pvltools, pvl_solo, pvlnsp.a; print('RENDER ok', pvl_solo.SOLO)";

const char* const kInstallerLinked = "clsi-venvs\n";
const char* const kInstallerPip = "pip\n";

// What importlib.metadata sees in site-packages (argv[1]).
const char* const kMetadataScript = R"PY(
import importlib.metadata as md, sys
dists = list(md.distributions(path=[sys.argv[1]]))
print('distributions', sorted((d.metadata['Name'], d.version) for d in dists))
for d in sorted(dists, key=lambda d: (d.metadata['Name'], d.version)):
    print('dist', d.metadata['Name'], d.version, 'requires', d.requires)
    for ep in sorted(d.entry_points, key=lambda e: (e.group, e.name)):
        print('  entry point', ep.group, ep.name, '=', ep.value, 'extras', ep.extras)
    for f in sorted(d.files or [], key=str):
        print('  file', f, 'exists' if f.locate().exists() else 'MISSING')
)PY";

// Every module of the corpus, where it was found (relative to the venv).
const char* const kImportScript = R"PY(
import importlib, os, sys
def rel(p):
    return None if p is None else os.path.relpath(p, sys.prefix)
for n in ['pvltools', 'pvltools.cli', 'pvltools.mod', 'pvltools.gui', 'pvltools.sub.deep.mod',
          'pvltools_pure', 'pvltools_plat', 'pvlbase', 'pvlroot', 'pvlnsp', 'pvlnsp.a', 'pvlnsp.b',
          'pvl_many', 'pvlplat', 'pvlplat_pure', 'pvl_hidden', 'pvllegacy', 'pvllegacy.sub']:
    m = importlib.import_module(n)
    path = getattr(m, '__path__', None)
    print('module', n, rel(getattr(m, '__file__', None)),
          [rel(p) for p in path] if path is not None else '-')
import pvlbase, pvl_hidden, pvllegacy.sub, pvlnsp.a, pvlnsp.b, pvl_many
print('values', pvlbase.BASE, '|', pvl_hidden.HIDDEN, '|', pvllegacy.sub.LEGACY, '|',
      pvlnsp.a.A, pvlnsp.b.B, '|', pvl_many.MANY)
print('pth dir on sys.path', [rel(p) for p in sys.path if p.endswith('pvl_pth_extra')])
)PY";

// .pyc files under argv[1] that the interpreter would not use: their header
// does not match their source (a timestamp .pyc: its mtime and size; a
// hash-based one: the source's hash), so every import would compile again
// (and could not write the result into a read-only store). Run by the base
// interpreter, not the venv's.
const char* const kStalePycScript = R"PY(
import importlib.util, os, struct, sys
root = sys.argv[1]
for d, _, names in sorted(os.walk(root)):
    for n in sorted(names):
        if not n.endswith('.pyc'):
            continue
        pyc = os.path.join(d, n)
        rel = os.path.relpath(pyc, root)
        try:
            src = importlib.util.source_from_cache(pyc)
        except ValueError as e:
            print('stale', rel, 'not in a __pycache__ of its source:', e)
            continue
        with open(pyc, 'rb') as f:
            head = f.read(16)
        if head[:4] != importlib.util.MAGIC_NUMBER:
            print('stale', rel, 'another magic number')
            continue
        flags = struct.unpack('<I', head[4:8])[0]
        if not os.path.exists(src):
            print('stale', rel, 'no source', os.path.relpath(src, root))
        elif flags & 1:
            with open(src, 'rb') as f:
                if importlib.util.source_hash(f.read()) != head[8:16]:
                    print('stale', rel, 'hash-based, another source hash')
        else:
            st = os.stat(src)
            mtime, size = struct.unpack('<II', head[8:16])
            if mtime != int(st.st_mtime) & 0xFFFFFFFF or size != st.st_size & 0xFFFFFFFF:
                print('stale', rel, 'timestamp-based: header', mtime, size, 'source', int(st.st_mtime), st.st_size)
)PY";

// Scripts of bin/ that run (the entry points' and .data/scripts').
const std::vector<std::string> kScripts = {"pvl-tool", "pvl-extra", "pvl-dotted",
                                           "pvl-gui",  "pvl-hello", "pvl-sh"};

// ---------------------------------------------------------------------------
// Small helpers.

bool starts_with(const std::string& s, const std::string& p) {
  return s.rfind(p, 0) == 0;
}
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}
std::string basename_of(const std::string& rel) {
  auto slash = rel.rfind('/');
  return slash == std::string::npos ? rel : rel.substr(slash + 1);
}
std::string dirname_of(const std::string& rel) {
  auto slash = rel.rfind('/');
  return slash == std::string::npos ? std::string() : rel.substr(0, slash);
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

// A line of text fit for a report: control bytes escaped, cut at 160.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() > 160) return out + "...";
    if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// "line N: link «...» / pip «...»" for the first line where a and b differ.
std::string first_difference(const std::string& a, const std::string& b) {
  auto la = split_lines(a);
  auto lb = split_lines(b);
  for (std::size_t i = 0; i < std::max(la.size(), lb.size()); ++i) {
    std::string x = i < la.size() ? la[i] : "<no line>";
    std::string y = i < lb.size() ? lb[i] : "<no line>";
    if (x != y)
      return "line " + std::to_string(i + 1) + ": link «" + printable(x) + "» / pip «" +
             printable(y) + "»";
  }
  return "same lines, other bytes (a line end?)";
}

std::string join(const std::vector<std::string>& items, std::size_t shown = 40) {
  std::ostringstream os;
  for (std::size_t i = 0; i < items.size() && i < shown; ++i)
    os << "\n  " << items[i];
  if (items.size() > shown) os << "\n  ... and " << items.size() - shown << " more";
  return os.str();
}

// One CHECK per kind of difference, listing the first ones.
void expect_none(const std::string& what, const std::vector<std::string>& items) {
  INFO(what << ": " << items.size() << join(items));
  CHECK(items.empty());
}

// Lines only in a, only in b (sorted outputs are compared this way).
std::vector<std::string> line_diff(const std::string& link, const std::string& pip) {
  auto a = split_lines(link);
  auto b = split_lines(pip);
  std::multiset<std::string> sa(a.begin(), a.end());
  std::multiset<std::string> sb(b.begin(), b.end());
  std::vector<std::string> out;
  for (const auto& l : a)
    if (!sb.count(l)) out.push_back("link only: " + printable(l));
  for (const auto& l : b)
    if (!sa.count(l)) out.push_back("pip only:  " + printable(l));
  if (out.empty() && a != b) out.push_back("the same lines in another order");
  return out;
}

std::string sha256_record_form(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* const kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out = "sha256=";
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned int i = 0; i < len; ++i) {
    acc = (acc << 8) | md[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 63];
  return out;  // urlsafe base64 without padding, as in RECORD
}

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::string out;
  char buf[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    out += buf;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Trees.

struct Node {
  char kind = '?';  // f file, d directory, l symlink, o anything else
  mode_t mode = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  nlink_t nlink = 0;
  std::string target;  // of a symlink
};
using Tree = std::map<std::string, Node>;  // by path relative to the root

Tree scan(const std::string& root) {
  Tree t;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::string full = it->path().string();
    struct stat st {};
    if (::lstat(full.c_str(), &st) != 0) continue;
    Node n;
    n.kind = S_ISREG(st.st_mode)   ? 'f'
             : S_ISDIR(st.st_mode) ? 'd'
             : S_ISLNK(st.st_mode) ? 'l'
                                   : 'o';
    n.mode = st.st_mode & 07777;
    n.dev = st.st_dev;
    n.ino = st.st_ino;
    n.nlink = st.st_nlink;
    if (n.kind == 'l') n.target = fs::read_symlink(it->path(), ec).string();
    t.emplace(full.substr(root.size() + 1), n);
  }
  return t;
}

std::string mode_text(mode_t m) {
  char buf[16];  // "%04o" of any mode_t fits
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m));
  return buf;
}

bool in_dist_info(const std::string& rel) {
  return ends_with(dirname_of(rel), ".dist-info");
}

// The service's own additions to a venv that pip's lacks.
bool service_extra(const std::string& rel) {
  return rel == "share/jupyter" || starts_with(rel, "share/jupyter/");
}

// Files of the venv that are the venv's own, not any wheel's: made by
// `python -m venv`, or written for this venv by the installer.
bool per_venv_file(const std::string& venv, const std::string& rel) {
  static const std::set<std::string> kVenvOwn = {"pyvenv.cfg", "bin/activate", "bin/activate.csh",
                                                 "bin/activate.fish", "bin/Activate.ps1"};
  static const std::set<std::string> kWritten = {"RECORD", "INSTALLER", "REQUESTED",
                                                 "direct_url.json"};
  if (kVenvOwn.count(rel) || service_extra(rel)) return true;
  if (in_dist_info(rel) && kWritten.count(basename_of(rel))) return true;
  // Entry-point scripts and rewritten #!python scripts name the venv.
  if (starts_with(rel, "bin/"))
    return testenv::read_file(venv + "/" + rel).find(venv) != std::string::npos;
  return false;
}

// ---------------------------------------------------------------------------
// RECORD.

struct RecordRow {
  std::string raw;  // the line, without its line end
  std::string path;
  std::string hash;
  std::string size;
};

// One CSV row (the csv module's quoting: "a,b" and "" inside quotes).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  return fields;
}

std::vector<RecordRow> parse_record(const std::string& text) {
  std::vector<RecordRow> rows;
  for (auto line : split_lines(text)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    auto f = csv_fields(line);
    f.resize(std::max<std::size_t>(f.size(), 3));
    rows.push_back({line, f[0], f[1], f[2]});
  }
  return rows;
}

// Where a RECORD path (relative to site-packages) is, relative to the venv;
// "" when outside it.
std::string record_path_in_venv(const std::string& site_rel, const std::string& path) {
  std::string p = fs::path(site_rel + "/" + path).lexically_normal().string();
  return starts_with(p, "../") || p == ".." ? std::string() : p;
}

struct Venv {
  std::string root;
  std::string site_rel;  // lib/pythonX.Y/site-packages
  [[nodiscard]] std::string site() const { return root + "/" + site_rel; }
};

std::string find_site_rel(const std::string& venv) {
  for (const auto& e : testenv::list_dir(venv + "/lib")) {
    if (starts_with(e, "python") && testenv::exists(venv + "/lib/" + e + "/site-packages"))
      return "lib/" + e + "/site-packages";
  }
  return "lib/site-packages-not-found";
}

// Each row with a hash is true of the file it names in that venv.
void check_record_true(const char* who, const Venv& v, const std::string& record_rel,
                       const std::vector<RecordRow>& rows, std::vector<std::string>& problems) {
  for (const auto& r : rows) {
    if (r.hash.empty()) continue;
    auto rel = record_path_in_venv(v.site_rel, r.path);
    if (rel.empty() || !testenv::exists(v.root + "/" + rel)) continue;  // pip keeps such rows
    auto data = testenv::read_file(v.root + "/" + rel);
    if (r.hash != sha256_record_form(data) || r.size != std::to_string(data.size())) {
      problems.push_back(std::string(who) + " " + record_rel + ": row «" + printable(r.raw) +
                         "» is not true of " + rel + " (" + sha256_record_form(data) + ", " +
                         std::to_string(data.size()) + " bytes)");
    }
  }
}

struct Report {
  std::vector<std::string> only_link, only_pip, kinds, modes, symlinks, contents, pyc, installer,
      record_rows, record_format, record_truth;
};

// Files whose bytes may differ by the venv path: what was generated or
// rewritten for the venv, and venv's own files.
bool path_dependent(const std::string& rel) {
  return starts_with(rel, "bin/") || rel == "pyvenv.cfg";
}

void compare_records(const Venv& link, const Venv& pip, const std::string& rel,
                     const std::set<std::string>& venv_path_only, Report& out) {
  const std::string link_text = testenv::read_file(link.root + "/" + rel);
  const std::string pip_text = testenv::read_file(pip.root + "/" + rel);
  // pip's csv.writer: "\r\n" after every row, rows sorted.
  if (testenv::count_occurrences(link_text, "\r\n") !=
          testenv::count_occurrences(link_text, "\n") ||
      (!link_text.empty() && !ends_with(link_text, "\r\n"))) {
    out.record_format.push_back(rel + ": not every line ends with \\r\\n (" +
                                first_difference(link_text, pip_text) + ")");
  }
  auto a = parse_record(link_text);
  auto b = parse_record(pip_text);
  check_record_true("link", link, rel, a, out.record_truth);
  check_record_true("pip", pip, rel, b, out.record_truth);
  std::map<std::string, const RecordRow*> by_path_b;
  for (const auto& r : b)
    by_path_b[r.path] = &r;
  std::set<std::string> paths_a;
  for (const auto& r : a) {
    paths_a.insert(r.path);
    auto it = by_path_b.find(r.path);
    if (it == by_path_b.end()) {
      out.record_rows.push_back(rel + ": a row pip has not: «" + printable(r.raw) + "»");
      continue;
    }
    const RecordRow& p = *it->second;
    if (r.raw == p.raw) continue;
    // Another hash or size: only for the files written for each venv (their
    // rows were checked against their files above).
    auto in_venv = record_path_in_venv(link.site_rel, r.path);
    bool allowed = (in_dist_info(in_venv) && basename_of(in_venv) == "INSTALLER") ||
                   venv_path_only.count(in_venv);
    if (!allowed || r.path != p.path)
      out.record_rows.push_back(rel + ": link «" + printable(r.raw) + "» / pip «" +
                                printable(p.raw) + "»");
  }
  for (const auto& r : b)
    if (!paths_a.count(r.path))
      out.record_rows.push_back(rel + ": a row only pip has: «" + printable(r.raw) + "»");
  std::vector<std::string> order_a, order_b;
  for (const auto& r : a)
    order_a.push_back(r.path);
  for (const auto& r : b)
    order_b.push_back(r.path);
  if (paths_a.size() == by_path_b.size() && order_a != order_b)
    out.record_format.push_back(rel + ": rows in another order than pip's (sorted)");
}

Report compare_venvs(const Venv& link, const Venv& pip) {
  Report out;
  const Tree ta = scan(link.root);
  const Tree tb = scan(pip.root);
  for (const auto& [rel, n] : ta)
    if (!tb.count(rel) && !service_extra(rel)) out.only_link.push_back(rel);
  for (const auto& [rel, n] : tb)
    if (!ta.count(rel)) out.only_pip.push_back(rel);

  std::set<std::string> venv_path_only;  // files equal only once the venv path is replaced
  std::vector<std::string> records;
  for (const auto& [rel, a] : ta) {
    auto it = tb.find(rel);
    if (it == tb.end()) continue;
    const Node& b = it->second;
    if (a.kind != b.kind) {
      out.kinds.push_back(rel + ": link '" + a.kind + "' / pip '" + b.kind + "'");
      continue;
    }
    if (a.kind != 'l' && (a.mode & ~0222) != (b.mode & ~0222))
      out.modes.push_back(rel + ": link " + mode_text(a.mode) + " / pip " + mode_text(b.mode) +
                          " (write bits aside)");
    if (a.kind == 'l') {
      if (replace_all(a.target, link.root, "<VENV>") != replace_all(b.target, pip.root, "<VENV>"))
        out.symlinks.push_back(rel + ": link -> " + a.target + " / pip -> " + b.target);
      continue;
    }
    if (a.kind != 'f') continue;
    const std::string name = basename_of(rel);
    if (in_dist_info(rel) && name == "RECORD") {
      records.push_back(rel);
      continue;
    }
    std::string da = testenv::read_file(link.root + "/" + rel);
    std::string db = testenv::read_file(pip.root + "/" + rel);
    if (in_dist_info(rel) && name == "INSTALLER") {
      if (da != kInstallerLinked || db != kInstallerPip)
        out.installer.push_back(rel + ": link «" + printable(da) + "» (want «" +
                                printable(kInstallerLinked) + "»), pip «" + printable(db) + "»");
      continue;
    }
    if (ends_with(rel, ".pyc")) {
      // Compiled elsewhere, so other bytes; the same interpreter's magic.
      if (da.substr(0, 4) != db.substr(0, 4) || da.size() < 16)
        out.pyc.push_back(rel + ": magic link «" + printable(da.substr(0, 4)) + "» / pip «" +
                          printable(db.substr(0, 4)) + "»");
      continue;
    }
    if (da == db) continue;
    if (path_dependent(rel)) {
      // The activate scripts' prompt is the venv directory's name.
      auto na =
          replace_all(replace_all(da, link.root, "<VENV>"), basename_of(link.root), "<VENV-NAME>");
      auto nb =
          replace_all(replace_all(db, pip.root, "<VENV>"), basename_of(pip.root), "<VENV-NAME>");
      if (na == nb) {
        venv_path_only.insert(rel);
        continue;
      }
      out.contents.push_back(rel + " (venv path replaced): " + first_difference(na, nb));
      continue;
    }
    out.contents.push_back(rel + ": " + first_difference(da, db));
  }
  for (const auto& rel : records)
    compare_records(link, pip, rel, venv_path_only, out);
  return out;
}

void expect_same_trees(const Venv& link, const Venv& pip) {
  INFO("link venv " << link.root << "\npip venv  " << pip.root);
  auto r = compare_venvs(link, pip);
  expect_none("paths only in the linked venv", r.only_link);
  expect_none("paths only in pip's venv", r.only_pip);
  expect_none("paths of another kind (file, directory, symlink)", r.kinds);
  expect_none("modes that differ beyond the write bits", r.modes);
  expect_none("symlinks that point elsewhere", r.symlinks);
  expect_none("files whose contents differ", r.contents);
  expect_none(".pyc files of another interpreter", r.pyc);
  expect_none(std::string("INSTALLER files that are not \"clsi-venvs\\n\" (pip's: \"pip\\n\")"),
              r.installer);
  expect_none("RECORD rows that differ beyond the per-venv files' hashes", r.record_rows);
  expect_none("RECORD files not in pip's format (\\r\\n, sorted rows)", r.record_format);
  expect_none("RECORD rows not true of their files", r.record_truth);
  for (const Venv* v : {&link, &pip}) {
    auto stale =
        testenv::run({testenv::helper_python(), "-I", "-B", "-c", kStalePycScript, v->root});
    CHECK(stale.status == 0);
    expect_none(std::string(v == &link ? "link" : "pip") +
                    " venv: .pyc files that do not match their source",
                split_lines(stale.output));
  }
}

// ---------------------------------------------------------------------------
// The world: a store, the corpus' index, the service.

struct Corpus {
  VenvWorld w{kCorpus};

  Corpus() { w.configure(); }

  // Builds `requirements` through clsi-runner and the service, as a compile
  // does; the new venv.
  Venv build_linked(const std::string& requirements, const std::string& render_code) {
    auto before = w.env_dirs();
    auto dir = w.project(requirements);
    int status = -1;
    auto log = w.compile(dir, true, render_code, {}, {}, &status);
    INFO(log);
    REQUIRE(status == 0);
    REQUIRE_THAT(log, Contains("render python: " + w.venvs + "/envs/"));
    REQUIRE_THAT(log, Contains("RENDER ok"));
    std::vector<std::string> added;
    for (const auto& k : w.env_dirs())
      if (std::find(before.begin(), before.end(), k) == before.end()) added.push_back(k);
    REQUIRE(added.size() == 1);
    Venv v;
    v.root = w.venvs + "/envs/" + added[0];
    v.site_rel = find_site_rel(v.root);
    return v;
  }

  // The interpreter the service made `venv` with (its completion record).
  [[nodiscard]] std::string python_of(const Venv& venv) const {
    auto record = clsi::venv::parse_record(testenv::read_file(venv.root + ".complete"));
    if (!record || record->python_path.empty()) return testenv::base_python();
    return record->python_path;
  }

  // The oracle: `python -m venv` with the same interpreter and options as the
  // service, then pip from the base interpreter installs `requirements` from
  // the same index. Its path is as long as `like`'s.
  Venv build_with_pip(const std::string& requirements, const Venv& like) {
    std::string parent = w.tmp / "pip";
    ::mkdir(parent.c_str(), 0755);
    const std::size_t name_len = like.root.size() - parent.size() - 1;
    REQUIRE(name_len >= 8);
    Venv v;
    v.root = parent + "/" + std::string(name_len, 'o');
    const std::string req_file = w.tmp / "pip-requirements.txt";
    testenv::write_file(req_file, requirements);
    // The service's umask; -I as the service runs it.
    auto mk = testenv::run({"sh", "-c", "umask 022 && exec \"$@\"", "sh", python_of(like), "-I",
                            "-m", "venv", "--system-site-packages", "--without-pip", v.root});
    INFO(mk.output);
    REQUIRE(mk.status == 0);
    auto pip = testenv::run({"sh",
                             "-c",
                             "umask 022 && exec \"$@\"",
                             "sh",
                             v.root + "/bin/python3",
                             "-I",
                             "-m",
                             "pip",
                             "install",
                             "--isolated",
                             "--no-input",
                             "--disable-pip-version-check",
                             "--no-color",
                             "--progress-bar",
                             "off",
                             "--no-cache-dir",
                             "--index-url",
                             w.file_index_url(),
                             "--no-warn-script-location",
                             "--only-binary=:all:",
                             "-r",
                             req_file},
                            {}, w.tmp.path());
    INFO(pip.output);
    REQUIRE(pip.status == 0);
    v.site_rel = find_site_rel(v.root);
    return v;
  }
};

// Runs the venv's own interpreter (after its build: allowed in a test).
testenv::CommandResult run_python(const Venv& v, const std::string& code,
                                  const std::vector<std::string>& args = {}) {
  std::vector<std::string> argv = {v.root + "/bin/python3", "-I", "-B", "-c", code};
  argv.insert(argv.end(), args.begin(), args.end());
  return testenv::run(argv, {}, v.root, 60);
}

std::string run_scripts(const Venv& v) {
  std::string out;
  for (const auto& s : kScripts) {
    try {
      auto r = testenv::run({v.root + "/bin/" + s}, {{"PYTHONDONTWRITEBYTECODE", "1"}}, v.root, 60);
      out +=
          s + ": exit " + std::to_string(r.status) + ": " + replace_all(r.output, v.root, "<VENV>");
    } catch (const std::exception& e) {  // not executable, a bad shebang
      out += s + ": does not run: " + replace_all(e.what(), v.root, "<VENV>") + "\n";
    }
  }
  return out;
}

std::set<std::string> requested_dist_infos(const Venv& v) {
  std::set<std::string> out;
  for (const auto& e : testenv::list_dir(v.site()))
    if (ends_with(e, ".dist-info") && testenv::exists(v.site() + "/" + e + "/REQUESTED"))
      out.insert(e);
  return out;
}

std::string names(const std::set<std::string>& s) {
  std::string out;
  for (const auto& n : s)
    out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

// (dev, inode) of every regular file under `dir`.
std::set<std::pair<dev_t, ino_t>> inodes_under(const std::string& dir) {
  std::set<std::pair<dev_t, ino_t>> out;
  for (const auto& [rel, n] : scan(dir))
    if (n.kind == 'f') out.emplace(n.dev, n.ino);
  return out;
}

}  // namespace

TEST_CASE("pip is the oracle: the service's venv of an awkward corpus is the venv pip installs",
          "[pip-vs-link]") {
  auto started = std::chrono::steady_clock::now();
  Corpus c;
  Venv link = c.build_linked(kRequirements, kRenderCode);
  Venv pip = c.build_with_pip(kRequirements, link);
  REQUIRE(link.site_rel == pip.site_rel);
  REQUIRE(link.root.size() == pip.root.size());

  // Sanity of the oracle itself: pip installed the corpus as the test means it.
  {
    INFO("pip's venv: " << pip.root);
    std::set<std::string> dist_infos;
    for (const auto& e : testenv::list_dir(pip.site()))
      if (ends_with(e, ".dist-info")) dist_infos.insert(e);
    CHECK(names(dist_infos) == names(kAllDistInfos));
    CHECK(testenv::list_dir(pip.site() + "/pvl_many/_many").size() == 10000);
    CHECK(testenv::exists(pip.root + "/include/site/python3.11/pvl-tools/x.h"));
    CHECK(testenv::exists(pip.root + "/share/pvl-tools/config.toml"));
    CHECK(testenv::exists(pip.root + "/share/pvl-tools/__pycache__/helper.cpython-311.pyc"));
    CHECK_FALSE(testenv::exists(pip.site() + "/pvlnsp/__init__.py"));
    CHECK_FALSE(testenv::exists(pip.site() + "/pvltools/__pycache__/broken.cpython-311.pyc"));
    CHECK_FALSE(testenv::exists(pip.site() + "/pvltools/emptydir"));
    CHECK(testenv::read_file(pip.root + "/bin/pvl-hello")
              .rfind("#!" + pip.root + "/bin/python3\n", 0) == 0);
    CHECK(testenv::read_file(pip.root + "/bin/pvl-tool").find("from pvltools.cli import main") !=
          std::string::npos);
  }

  // The trees, file by file.
  expect_same_trees(link, pip);

  // REQUESTED: for what the requirements named, as pip writes it.
  CHECK(names(requested_dist_infos(pip)) == names(kRequestedDistInfos));
  CHECK(names(requested_dist_infos(link)) == names(kRequestedDistInfos));

  // No direct_url.json: everything came from the index.
  for (const auto& d : kAllDistInfos) {
    INFO(d);
    CHECK_FALSE(testenv::exists(link.site() + "/" + d + "/direct_url.json"));
  }

  // What each venv's interpreter sees (run only now: running python can
  // write into pip's venv).
  {
    auto a = run_python(link, kMetadataScript, {link.site()});
    auto b = run_python(pip, kMetadataScript, {pip.site()});
    INFO("link venv's importlib.metadata, its first lines:" << join(split_lines(a.output), 12));
    CHECK(a.status == 0);
    CHECK(b.status == 0);
    CHECK_THAT(b.output, Contains("('PVL_Tools', '1.0')") && Contains("pvl.plugins builtin"));
    expect_none("importlib.metadata lines that differ", line_diff(a.output, b.output));
  }
  {
    auto a = run_python(link, kImportScript);
    auto b = run_python(pip, kImportScript);
    INFO("link venv's imports:\n" << a.output << "\npip venv's imports:\n" << b.output);
    CHECK(a.status == 0);
    CHECK(b.status == 0);
    CHECK_THAT(a.output, Contains("legacy namespace") && Contains("found through the .pth"));
    expect_none("import lines that differ", line_diff(a.output, b.output));
  }
  {
    auto a = run_scripts(link);
    auto b = run_scripts(pip);
    INFO("link venv's scripts:\n" << a << "\npip venv's scripts:\n" << b);
    CHECK_THAT(a, Contains("pvl-dotted: exit 0: pvl dotted method") &&
                      Contains("pvl-extra: exit 0: pvl cli main pvl-extra") &&
                      Contains("pvl-hello: exit 0: hello from pvltools 1.0") &&
                      Contains("pvl-sh: exit 0: pvl-sh ran"));
    expect_none("script outputs that differ", line_diff(a, b));
  }
  auto took = std::chrono::steady_clock::now() - started;
  WARN("pip-vs-link comparison took "
       << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
}

TEST_CASE(
    "pip is the oracle: every file of the corpus' venv is a read-only hard link into "
    "dists/, and a second venv links the same inodes",
    "[pip-vs-link][links]") {
  Corpus c;
  Venv v1 = c.build_linked(kRequirements, kRenderCode);
  Venv v2 = c.build_linked(kRequirements2, kRenderCode2);
  const std::string dists = c.w.venvs + "/dists";
  const auto store_inodes = inodes_under(dists);
  INFO("store: " << dists << " (" << store_inodes.size() << " files)");

  // Each wheel is kept once, under its sha256.
  {
    std::vector<std::string> missing;
    for (const auto& whl : testenv::list_dir(c.w.index + "/files")) {
      auto hex = sha256_hex(testenv::read_file(c.w.index + "/files/" + whl));
      if (!fs::is_directory(dists + "/" + hex)) missing.push_back(whl + " -> dists/" + hex + "/");
    }
    expect_none("wheels without their dists/<sha256>/ directory", missing);
  }

  // Every file but the per-venv ones is a read-only hard link of a store file.
  struct Linked {
    std::size_t count = 0;
    std::vector<std::string> not_linked, not_in_store, writable;
  };
  auto check_linked = [&](const Venv& v) {
    Linked out;
    for (const auto& [rel, n] : scan(v.root)) {
      if (n.kind != 'f' || per_venv_file(v.root, rel)) continue;
      ++out.count;
      if (n.nlink < 2)
        out.not_linked.push_back(rel + " (st_nlink " + std::to_string(n.nlink) + ")");
      if (!store_inodes.count({n.dev, n.ino})) out.not_in_store.push_back(rel);
      if (n.mode & 0222) out.writable.push_back(rel + " (mode " + mode_text(n.mode) + ")");
    }
    return out;
  };
  for (const Venv* v : {&v1, &v2}) {
    INFO("venv " << v->root);
    auto l = check_linked(*v);
    CHECK(l.count > 10000);  // pvl-many's files at least
    expect_none("files that are not hard links (st_nlink < 2)", l.not_linked);
    expect_none("files whose inode is not under <venvs_dir>/dists/", l.not_in_store);
    expect_none("linked files that are writable (mode & 0222)", l.writable);
  }

  // The second venv shares the first one's inodes for every file it shares.
  {
    auto t1 = scan(v1.root);
    auto t2 = scan(v2.root);
    std::size_t shared = 0;
    std::vector<std::string> other_inode;
    for (const auto& [rel, n2] : t2) {
      if (n2.kind != 'f' || per_venv_file(v2.root, rel)) continue;
      auto it = t1.find(rel);
      if (it == t1.end() || it->second.kind != 'f' || per_venv_file(v1.root, rel)) continue;
      ++shared;
      if (it->second.dev != n2.dev || it->second.ino != n2.ino) other_inode.push_back(rel);
    }
    INFO("second venv " << v2.root << " shares " << shared << " files with the first");
    CHECK(shared > 10000);
    expect_none("files of the second venv with another inode than the first's", other_inode);
  }

  // Per-venv files are the venv's own: not shared between the two venvs.
  {
    struct stat a {
    }, b{};
    const std::string record = "/PVL_Tools-1.0.dist-info/RECORD";
    REQUIRE(::stat((v1.site() + record).c_str(), &a) == 0);
    REQUIRE(::stat((v2.site() + record).c_str(), &b) == 0);
    CHECK(a.st_ino != b.st_ino);
    CHECK(testenv::read_file(v1.root + "/bin/pvl-tool").find(v1.root + "/bin/python3") !=
          std::string::npos);
    CHECK(testenv::read_file(v2.root + "/bin/pvl-tool").find(v2.root + "/bin/python3") !=
          std::string::npos);
  }
}
