#!/usr/bin/env bash
# Installs what is missing, builds, checks formatting, and runs every test:
# once in a normal build and once under AddressSanitizer + UBSan; then the
# unit tests under ThreadSanitizer.
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
if [ "${CLSI_SKIP_TSAN:-0}" != 1 ]; then
  # Hooks of one plugin instance run at once on threads of one host process,
  # and the build service is threads around shared state: the unit suite
  # drives both (an in-process service, many compiles of one instance).
  echo "== build with ThreadSanitizer (build-tsan/)"
  cmake -S . -B build-tsan -DCLSI_BUILD_TESTS=ON -DCLSI_TSAN=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build build-tsan -j"$jobs" --target clsi_unit_tests requirements_fuzz_smoke
  echo "== unit tests under ThreadSanitizer (build-tsan/)"
  (cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest -j"$jobs" -L unit --output-on-failure)
fi
echo "== all tests passed"
