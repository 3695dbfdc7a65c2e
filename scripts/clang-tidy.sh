#!/usr/bin/env bash
# Runs clang-tidy, with the checks of .clang-tidy, over every source file of
# host-api/, plugin/ and host-node/src/ (the Node addon, when the build has
# it) that the build compiles (their headers are checked through
# HeaderFilterRegex), in parallel; fails on any finding.
#
#   bash scripts/clang-tidy.sh [BUILD_DIR]        BUILD_DIR defaults to build
#
# BUILD_DIR needs only to be configured, not built: clang-tidy reads its
# compile_commands.json (CMakeLists.txt exports it), and no source includes
# a generated header. CLSI_TIDY_JOBS overrides the parallelism (nproc).
#
# tests/, host-node/test/ (C fixtures) and bench/ are left out on purpose: the tests set and read the
# process environment around the code under test (setenv/getenv, which
# concurrency-mt-unsafe flags by design), and their Catch2-heavy translation
# units would about double this step's time on a 2-core runner. What they
# test is checked here, where it lives.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-build}
jobs=${CLSI_TIDY_JOBS:-$(nproc 2>/dev/null || echo 2)}
tidy=${CLANG_TIDY:-clang-tidy}
db="$build/compile_commands.json"
if [ ! -f "$db" ]; then
  echo "clang-tidy.sh: no $db; configure $build first (cmake -S . -B $build)" >&2
  exit 2
fi

mapfile -t sources < <(python3 - "$db" "$PWD" <<'EOF'
import json, os, sys
db, root = sys.argv[1], os.path.realpath(sys.argv[2])
seen = set()
for entry in json.load(open(db)):
    path = os.path.realpath(os.path.join(entry["directory"], entry["file"]))
    rel = os.path.relpath(path, root)
    top = rel.split(os.sep)[0]
    if (top in ("host-api", "plugin") or rel.startswith("host-node/src/")) and rel not in seen:
        seen.add(rel)
        print(rel)
EOF
)
if ((${#sources[@]} == 0)); then
  echo "clang-tidy.sh: $db lists no source of host-api/ or plugin/" >&2
  exit 2
fi

echo "clang-tidy.sh: $("$tidy" --version | grep -m1 -o 'version [0-9.]*'), ${#sources[@]} files, $jobs jobs"
# Every finding is an error (--warnings-as-errors), so a file with one makes
# clang-tidy exit non-zero; only such files' output is shown. (Single quotes:
# bash -c expands $0, $1 and $2, not this script.)
# shellcheck disable=SC2016
one_file='out=$("$0" -p "$1" --quiet --warnings-as-errors="*" "$2" 2>&1) && exit 0
printf "%s\n" "$out" | grep -v "^[0-9]* warnings\? \(and [0-9]* errors\? \)\?generated\.$"
exit 1'
if ! printf '%s\n' "${sources[@]}" | xargs -P "$jobs" -n 1 bash -c "$one_file" "$tidy" "$build"; then
  echo "clang-tidy.sh: findings above; fix them (a NOLINT only with a reason)" >&2
  exit 1
fi
echo "clang-tidy.sh: no findings"
