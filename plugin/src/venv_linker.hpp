// A venv populated from the distribution store (dist_store.hpp), file for
// file where pip would put it (PEP 427, PEP 491's schemes): the files of each
// distribution hard-linked (where the filesystem cannot, reflinked, else
// copied, and said so), and what is the venv's own written here, as pip
// writes it:
//
//   *.dist-info/INSTALLER      "clsi-venvs"
//   *.dist-info/REQUESTED      for the distributions the requirements named
//   *.dist-info/RECORD         the wheel's rows with the venv's paths, plus
//                              the .pyc files and the files written here (pip's
//                              algorithm: same rows, same order, same quoting)
//   bin/<entry point>          console and GUI scripts, distlib's template,
//                              with the venv's bin/python3 in the shebang
//   bin/<#!python script>      .data/scripts whose first line is "#!python",
//                              that line replaced with the venv's interpreter
//
// A distribution with no scripts, no "#!python" file and no headers has the
// same INSTALLER and RECORD in every venv of one interpreter version (two
// RECORDs: named by the requirements or not). Those are made once when it is
// stored, in dists/<sha256>/own/, and linked like its files: a venv then
// owns only its directories and REQUESTED. A copy that does not hold the
// bytes this venv needs is not used; the venv gets its own.
//
// No direct_url.json: every distribution came from the index (PEP 610 has
// none for those). Nothing of a wheel runs; no path is followed through a
// symbolic link.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "dist_store.hpp"
#include "expected.hpp"

namespace clsi::venv {

struct LinkStats {
  std::int64_t linked = 0;       // hard links made
  std::int64_t reflinked = 0;    // another filesystem: copy-on-write clones
  std::int64_t copied = 0;       // another filesystem without reflinks: copies
  std::int64_t written = 0;      // the venv's own files written
  std::int64_t files = 0;        // everything placed in the venv
  std::int64_t directories = 0;  // directories made for them
  std::int64_t bytes = 0;        // the files' sizes
  bool bytes_known = true;       // false: a distribution's .pyc sizes were not (Dist::pyc_bytes)
};

class VenvLinker {
 public:
  // `venv`: made by `python -m venv`; `site_packages` relative to it
  // ("lib/python3.11/site-packages"); `python` "3.11".
  VenvLinker(std::string venv, std::string site_packages, std::string python);

  // Places one distribution. `requested`: the requirements named it;
  // `install_name`: the name pip would install it under (its headers
  // directory), "" for its own. Errors name the file; the venv is then half
  // made (the caller removes it).
  Expected<bool> add(const DistLease& dist, bool requested, const std::string& install_name = {});

  [[nodiscard]] const LinkStats& stats() const { return stats_; }

 private:
  std::string venv_;
  std::string site_packages_;
  std::string python_;
  std::string interpreter_;  // venv/bin/python3: the shebang of scripts
  LinkStats stats_;
};

// The distribution's own/ files (relative to its directory in the store).
inline constexpr const char* kSharedInstaller = "own/INSTALLER";
inline constexpr const char* kSharedRecordRequested = "own/RECORD.requested";
inline constexpr const char* kSharedRecordDependency = "own/RECORD.dependency";

// The RECORD every venv of interpreter `python` (its site-packages at
// `site_packages`, relative to the venv) gets for `dist`; nullopt when that
// differs from venv to venv.
std::optional<std::string> shared_record(const Dist& dist, bool requested,
                                         const std::string& site_packages,
                                         const std::string& python);
// Writes those shared files into a distribution's staged directory, before
// DistStore::publish makes it read-only: false (nothing written) when its
// RECORD differs from venv to venv.
Expected<bool> write_shared_own_files(const std::string& staged, const Dist& dist);

// A console script as pip (distlib) writes it for `executable`.
std::string console_script_text(const std::string& executable, const ScriptEntry& entry);

// The names pip gives the console scripts of a distribution: its own, with
// pip's and easy_install's versioned ones made for `python` ("3.11").
std::map<std::string, std::string> console_script_names(std::map<std::string, std::string> console,
                                                        const std::string& python);

}  // namespace clsi::venv
