// How the service starts pip for its one resolve (installer.cpp, step 2a):
// pip itself, through a few lines of Python that spare it two pieces of work.
//
// pip's `install --dry-run` reads every chosen wheel whole to check it
// against the index's sha256: for a 230 MB wheel that is most of the
// resolve. A wheel whose sha256 names a distribution the store already holds
// (dists/<sha256>/manifest.json, published only after our own check of those
// bytes) is not checked again: what the venv gets is the store's copy, never
// these bytes. pip reads the metadata of such a wheel from the store's
// unpacked copy (its one .dist-info, when it is the distribution pip asks
// for), not from the archive: what it resolves on is what the venv gets, and
// a heavy wheel's directory of entries is not read. The installer checks that
// the store's distribution has the name and version the resolve chose
// (dist_install.cpp). Any other wheel is checked as pip always does.
//
// pip's User-Agent costs every resolve 0.1-0.25 s (lsb_release, a scan of
// the installed distributions, rustc): the shim sends pip's version, the
// interpreter and the platform, in pip's format, without them (the .cpp).
// pip also reads any other wheel's metadata from the archive three times in one
// resolve (a heavy wheel's central directory is 17,000 entries: 70-110 ms
// each): the shim keeps what it read once for as long as the file is the same
// (device, inode, size, mtime). And pip exits without tearing the interpreter
// down (0.15 s after a heavy wheel), its output flushed and its report
// already closed.
// If pip's internals ever lack what the shim wraps, pip runs unchanged.
//
// The same lines start a pip ahead of the build that needs it
// (pip_spare.hpp): with pip's modules imported, it waits for the arguments of
// its one resolve on stdin.
#pragma once

#include <string>
#include <vector>

namespace clsi::venv {

// The interpreter arguments that take the place of `-m pip`: `-c CODE DISTS`.
// The code removes DISTS from sys.argv before pip reads its own.
std::vector<std::string> pip_resolve_launcher(const std::string& dists_dir);

// The same for pip's other runs (download, and the install of a pip too old
// to resolve first): only the User-Agent.
std::vector<std::string> pip_launcher();

// The base interpreter's arguments that start a spare (pip_spare.hpp): make
// a venv at `venv_dir`, then, as its interpreter, the shim with pip imported,
// which writes kSpareReadyLine and waits for one resolve's arguments (pip's
// own, `install ...`) as a JSON list on one line of stdin.
std::vector<std::string> pip_spare_launcher(const std::string& venv_dir,
                                            const std::string& dists_dir);

// The line the shim writes to pip's stderr when it spared any check (the
// build log's): its start, for tests and for the operator's grep.
inline constexpr const char* kSparedLinePrefix = "clsi-venvs: not hashed again";

// The line a spare writes when it is ready; nothing else it writes before it
// is pip's.
inline constexpr const char* kSpareReadyLine = "clsi-venvs: pip started ahead is ready";

}  // namespace clsi::venv
