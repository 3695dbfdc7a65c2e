// The Jupyter kernelspec every venv carries. Quarto's QUARTO_PYTHON only picks
// the interpreter that runs its kernel driver; the kernel itself is started
// from the "python3" kernelspec found first on the Jupyter data path. Debian's
// /usr/share/jupyter/kernels/python3 (or a user's own) names /usr/bin/python3,
// so without a spec of the venv's own, first on that path, the cells would run
// outside the venv. docs/store.md and docs/security.md say more.
#pragma once

#include <string>

#include "expected.hpp"

namespace clsi::venv {

// <venv>/share/jupyter: what JUPYTER_PATH gets in front.
std::string jupyter_data_dir(const std::string& venv);
// <venv>/share/jupyter/kernels/python3/kernel.json
std::string kernelspec_path(const std::string& venv);
// The kernel.json text: argv starts with <venv>/bin/python3.
std::string kernelspec_json(const std::string& venv, const std::string& display_name);
// "Python 3 (project environment <short key>)": the name every venv's spec has.
std::string kernel_display_name(const std::string& short_key);

// Writes the venv's python3 kernelspec, replacing whatever a wheel may have
// installed there. Creates share/jupyter/kernels/python3 one level at a time
// without following a symlink, so a planted link cannot send the write out of
// the venv. Runs no interpreter.
Expected<bool> write_kernelspec(const std::string& venv, const std::string& display_name);

// JUPYTER_PATH for a compile: the venv's data dir, then what the compile
// would have had (a colon-separated list; "" for none).
std::string jupyter_path_with(const std::string& venv, const std::string& previous);

}  // namespace clsi::venv
