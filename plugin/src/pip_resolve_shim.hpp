// How the service starts pip for its one resolve (installer.cpp, step 2a):
// pip itself, through a few lines of Python that spare it two pieces of work.
//
// pip's `install --dry-run` reads every chosen wheel whole to check it
// against the index's sha256: for a 230 MB wheel that is most of the
// resolve. A wheel whose sha256 names a distribution the store already holds
// (dists/<sha256>/manifest.json, published only after our own check of those
// bytes) is not checked again: what the venv gets is the store's copy, never
// these bytes. pip still reads the wheel's METADATA to resolve, and the
// installer checks that the store's distribution has the name and version
// the resolve chose (dist_install.cpp). Any other wheel is checked as pip
// always does.
//
// pip's User-Agent costs every resolve 0.1-0.25 s (lsb_release, a scan of
// the installed distributions, rustc): the shim sends pip's version, the
// interpreter and the platform, in pip's format, without them (the .cpp).
// pip also reads a wheel's metadata from the archive three times in one
// resolve (a heavy wheel's central directory is 17,000 entries: 70-110 ms
// each): the shim keeps what it read once for as long as the file is the same
// (device, inode, size, mtime). And pip exits without tearing the interpreter
// down (0.15 s after a heavy wheel), its output flushed and its report
// already closed.
// If pip's internals ever lack what the shim wraps, pip runs unchanged.
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

// The line the shim writes to pip's stderr when it spared any check (the
// build log's): its start, for tests and for the operator's grep.
inline constexpr const char* kSparedLinePrefix = "clsi-venvs: not hashed again";

}  // namespace clsi::venv
