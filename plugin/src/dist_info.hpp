// What a venv holds, read by our own code. Once pip has begun installing, no
// interpreter of the venv may start: a wheel can ship a .pth file (which any
// interpreter of the venv runs at startup, `-I` or not) or replace
// bin/python3. So the builder lists the installed distributions from their
// *.dist-info directories, and checks the venv against what
// `python -m venv` created, by reading files only, never following a
// symbolic link out of the venv.
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "expected.hpp"

namespace clsi::venv {

// Bounds on what is read from a wheel's files: a METADATA's header block (its
// body, the long description, is never read) and a RECORD.
constexpr std::size_t kMaxMetadataHeaderBytes = std::size_t{256} * 1024;
constexpr std::size_t kMaxRecordBytes = std::size_t{32} * 1024 * 1024;

struct MetadataHeaders {
  std::string name;     // Name:, as written
  std::string version;  // Version:
};

// Names and paths come from wheels: control characters as '?' (a newline
// would forge a line of output.log), at most `max` bytes, "..." after.
std::string printable(std::string_view s, std::size_t max = 200);

// Parses RFC 822 style headers up to the first blank line (or the end).
// Errors say what is wrong, without saying where.
Expected<MetadataHeaders> parse_metadata(std::string_view text);

struct Distribution {
  std::string dir;  // in site-packages: "alpha-1.0.dist-info" (or ".egg-info")
  std::string name;
  std::string version;
  // "alpha-1.0": what messages call the wheel.
  [[nodiscard]] std::string wheel() const;
};

// The venv's site-packages, relative to the venv: "lib/pythonX.Y/site-packages",
// found by listing lib/. `version_short` ("3.11") picks one of several; ""
// requires there to be exactly one.
Expected<std::string> find_site_packages(const std::string& venv, const std::string& version_short);

// Every *.dist-info (and legacy *.egg-info) in `site_packages` (relative to
// the venv), sorted by directory name. A symlinked, unreadable or malformed
// one is an error naming it.
Expected<std::vector<Distribution>> read_distributions(
    const std::string& venv, const std::string& site_packages,
    std::size_t max_header_bytes = kMaxMetadataHeaderBytes);

// "Name==version" of each, sorted: the completion record's `installed`.
std::vector<std::string> installed_list(const std::vector<Distribution>& distributions);

// What one entry of the venv was: enough to tell that it was replaced.
struct EntryState {
  mode_t type = 0;  // S_IFMT bits
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  std::string link_target;  // for a symlink
  // For the venv's own regular files (is_venv_own_file), their bytes: a
  // rewrite in place within one clock tick leaves the times alone.
  bool has_content = false;
  std::string content;
};

// Every entry under the venv (relative paths), taken right after
// `python -m venv` created it, before pip runs.
struct VenvSnapshot {
  std::map<std::string, EntryState> entries;
};
Expected<VenvSnapshot> snapshot_venv(const std::string& venv);

struct TreeUsage {
  std::int64_t bytes = 0;    // allocated blocks, as disk_usage() counts them
  std::int64_t entries = 0;  // files, directories and links under the root
  bool over = false;         // stopped early: more than the entry limit
};

// Measures the tree under `root` without following a symlink, stopping once it
// has seen more than `max_entries`. Cheap enough to run every second during
// an install; entries that vanish meanwhile are skipped.
Expected<TreeUsage> measure_tree(const std::string& root, std::int64_t max_entries);

struct VenvContents {
  TreeUsage usage;  // when usage.over, nothing else was checked
  std::string site_packages;
  std::vector<Distribution> distributions;
};

// Reads and checks the venv after pip. An error is a refusal, in a user's
// words, naming the wheel where it can: a wheel that replaced, added or
// removed one of the venv's own files (bin/python*, bin/activate*,
// pyvenv.cfg, the top-level directories), a RECORD listing a path outside
// the venv, a symlink pointing outside the venv that `python -m venv` did not
// create; or a distribution that cannot be read.
//
// `linked`: the venv was populated by the linker (venv_linker.hpp), which made
// no symbolic link, placed nothing on the venv's own files and refused every
// RECORD path record_path_refusal() refuses; this is what it placed. Then
// only what venv made is walked (the top level, bin/, and lib/ down to
// site-packages), and the usage is the linker's plus that.
Expected<VenvContents> inspect_venv(const std::string& venv, const VenvSnapshot& before,
                                    const std::string& version_short, std::int64_t max_entries,
                                    const TreeUsage* linked = nullptr);

// Why `path`, a row of a RECORD in the venv's `site_packages` (relative to
// the venv), may not be there: it is outside the venv, or one of the venv's
// own files; "" when it may. The words name `wheel` ("alpha-1.0").
std::string record_path_refusal(const std::string& site_packages, const std::string& wheel,
                                std::string_view path);

// True for the venv's own interpreter and activation files and pyvenv.cfg
// (relative paths): no wheel may replace or add them.
bool is_venv_own_file(std::string_view rel);

}  // namespace clsi::venv
