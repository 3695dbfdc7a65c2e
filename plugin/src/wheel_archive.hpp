// A wheel (PEP 427), read with libzip and unpacked by our own code: nothing
// in it runs. Where pip would put each file is decided here, the way pip
// decides it (PEP 427's root, PEP 491's `.data/<scheme>/` directories), and
// every name is checked before anything is written.
//
// Unpacked, a wheel is a tree of four parts, each named after where its
// files go in a venv:
//
//   lib/       site-packages: the wheel's root, .data/purelib, .data/platlib
//              (in a venv both are site-packages)
//   scripts/   bin/: .data/scripts
//   headers/   include/site/pythonX.Y/<name>/: .data/headers
//   data/      the venv itself: .data/data
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "expected.hpp"

namespace clsi::venv {

// The parts of an unpacked wheel, in this order.
inline constexpr const char* kWheelParts[] = {"lib", "scripts", "headers", "data"};

struct WheelFile {
  std::string archive_path;  // as in the archive and its RECORD
  std::string part;          // one of kWheelParts
  std::string rel;           // under the part
  bool executable = false;   // the archive's mode has an x bit (pip keeps only that)
  std::int64_t size = 0;
  // A .data/scripts file whose first line starts "#!python": pip rewrites
  // that line to the venv's interpreter, so each venv gets its own copy.
  bool python_shebang = false;
  // A setuptools wrapper in .data/scripts for one of the entry points: pip
  // skips it (it writes its own), and so do we.
  bool skipped = false;
};

struct RecordRow {
  std::string path, hash, size;
};

struct WheelContents {
  std::string name;               // METADATA's Name
  std::string version;            // METADATA's Version
  std::string dist_info;          // "name-1.0.dist-info"
  std::vector<WheelFile> files;   // in archive order; a later file of the same place wins
  std::vector<RecordRow> record;  // the wheel's RECORD, as written
  // entry_points.txt: name -> "module:attr" for console_scripts and gui_scripts.
  std::map<std::string, std::string> console_scripts, gui_scripts;
  std::int64_t bytes = 0;  // of all files unpacked
};

struct UnpackLimits {
  std::int64_t max_files = 0;
  std::int64_t max_bytes = 0;
};

// Unpacks the wheel at `wheel_path` into the empty directory `dest`
// (dest/<part>/<rel>). Refused, with words that name the wheel's file: an
// archive libzip cannot read or whose CRCs do not match; a name that is
// absolute, has a "." or ".." component, a NUL, or a backslash; two archive
// entries of one name; no or several *.dist-info directories; a WHEEL file
// whose Wheel-Version is not 1.x; a .data directory of another scheme than
// purelib, platlib, headers, scripts, data; more files or bytes than
// `limits`; a console or GUI entry point without a callable, or whose name
// is not a plain file name. Symbolic links in the archive become regular
// files holding the link's text, as pip makes them.
Expected<WheelContents> unpack_wheel(const std::string& wheel_path, const std::string& dest,
                                     const UnpackLimits& limits);

// Why a path in a wheel (or a manifest) cannot be unpacked or linked: empty,
// absolute, a "." or ".." or empty component, a NUL or a backslash; "" when
// it can.
std::string bad_name(std::string_view name);

// The rows of a RECORD file (CSV, RFC 4180 quoting).
Expected<std::vector<RecordRow>> parse_record_csv(std::string_view text);
// One RECORD row as Python's csv module writes it (minimal quoting, "\r\n").
std::string record_csv_row(const RecordRow& row);

// entry_points.txt: the pairs of one section ("console_scripts").
std::map<std::string, std::string> entry_point_section(std::string_view text,
                                                       std::string_view section);

struct ScriptEntry {
  std::string module;       // "pkg.cli"
  std::string import_name;  // "obj" of "pkg.cli:obj.method"
  std::string func;         // "obj.method"
};
// An entry point's value, "module:attr.attr [extras]", as pip (distlib)
// reads it; an error when it is not one or names no callable.
Expected<ScriptEntry> parse_script_entry(std::string_view value);

}  // namespace clsi::venv
