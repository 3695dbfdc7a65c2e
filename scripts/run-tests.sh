#!/usr/bin/env bash
# Installs what is missing, builds, checks formatting, and runs every test:
# once in a normal build and once under AddressSanitizer + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)

echo "== format check (clang-format)"
files=$(git ls-files '*.cpp' '*.hpp' '*.h' 2>/dev/null || find host-api plugin tests bench -name '*.[ch]pp' -o -name '*.h')
clang-format --dry-run -Werror $files

echo "== build (build/)"
cmake -S . -B build -DCLSI_BUILD_TESTS=ON >/dev/null
cmake --build build -j"$jobs"

echo "== tests (build/)"
(cd build && ctest -j"$jobs" --output-on-failure)

if [ "${CLSI_SKIP_SANITIZERS:-0}" != 1 ]; then
  echo "== build with ASan + UBSan (build-asan/)"
  cmake -S . -B build-asan -DCLSI_BUILD_TESTS=ON -DCLSI_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build build-asan -j"$jobs"
  echo "== tests under sanitizers (build-asan/)"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest -j"$jobs" --output-on-failure)
fi
echo "== all tests passed"
