#!/usr/bin/env bash
# Builds the Debian package clsi-python-venv with CPack.
#
#   packaging/build-deb.sh [BUILD_DIR]      (default: build-pkg; relative to the checkout)
#
# Configures BUILD_DIR for the prefix /usr (configuration in /etc), without
# tests, benchmarks or the Node addon, with Debian's build flags only
# (CMAKE_BUILD_TYPE=None, as debhelper does; dpkg-buildflags: -O2,
# hardening, -ffile-prefix-map; -DNDEBUG as in the RelWithDebInfo build the
# tests run; no -g, since nothing ships debug symbols), builds what the
# package holds, and runs `cpack -G DEB`. Prints the path of the .deb on its
# last line. Needs dpkg-dev (dpkg-shlibdeps, dpkg-buildflags) and file:
# scripts/install-deps.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-pkg}
case $build in /*) ;; *) build=$root/$build ;; esac
jobs=${CLSI_JOBS:-$(nproc 2>/dev/null || echo 2)}

# Debian's flags, as a package build would pass them. -ffile-prefix-map
# names the source directory as ".", so no path of this tree ends up in the
# binaries; it is relative to the directory dpkg-buildflags runs in.
cd "$root"
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
export DEB_CFLAGS_MAINT_STRIP=-g DEB_CXXFLAGS_MAINT_STRIP=-g DEB_CPPFLAGS_MAINT_APPEND=-DNDEBUG
CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
CXXFLAGS="$(dpkg-buildflags --get CXXFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
LDFLAGS=$(dpkg-buildflags --get LDFLAGS)
export CFLAGS CXXFLAGS LDFLAGS

# Passed with -D, so a tree configured before with other flags takes these.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=None -DCMAKE_INSTALL_PREFIX=/usr \
  -DCMAKE_CXX_FLAGS="$CXXFLAGS" -DCMAKE_C_FLAGS="$CFLAGS" \
  -DCMAKE_EXE_LINKER_FLAGS="$LDFLAGS" -DCMAKE_SHARED_LINKER_FLAGS="$LDFLAGS" \
  -DCMAKE_MODULE_LINKER_FLAGS="$LDFLAGS" \
  -DCLSI_BUILD_TESTS=OFF -DCLSI_BUILD_BENCH=OFF -DCLSI_BUILD_NODE=OFF >/dev/null
cmake --build "$build" -j"$jobs"
rm -f "$build"/clsi-python-venv_*.deb
if ! (cd "$build" && cpack -G DEB >"$build/cpack.log" 2>&1); then
  cat "$build/cpack.log" >&2
  exit 1
fi
deb=$(ls "$build"/clsi-python-venv_*.deb)
echo "$deb"
