#!/usr/bin/env bash
# Whole-process comparisons, side by side in one run, interleaved
# (docs/performance.md has the figures and what they mean):
#
#   (a) clsi-runner, plugin on, cache hit  vs  the same with the plugin off
#       (OVERLEAF_ENABLE_PROJECT_PYTHON_VENV=false)  vs  no plugin at all
#       (vs a what-if: the plugin's SHA-256 without OpenSSL 3's start-up);
#       command /bin/true. Target: on / off <= 1.2.
#   (b) the plugin's cold build (fresh venvs_dir; a clsi-runner compile of
#       /bin/true, which waits for the background build)  vs  the seed's way
#       (python3 -m venv --system-site-packages DIR && DIR/bin/pip install
#       --index-url URL -r requirements.txt), over file:// and loopback HTTP.
#       Target: plugin / seed <= 0.5. Then one build of each under strace, to
#       say where the seconds go.
#   (c) a second build that shares packages with a cached one, with the
#       download cache (<venvs_dir>/cache/pip) kept vs removed, over loopback
#       HTTP with a per-request delay; through the plugin, against
#       serve_index.py and against a server that sends PyPI's cache headers.
#
#   bash bench/compare.sh [BUILD_DIR]        BUILD_DIR defaults to build-bench
#
# Environment: N_HIT (200), N_COLD (5), N_CACHE (8), DELAY_MS (50),
# KEEP=1 keeps the work directory. About 5-8 minutes on 2 cores.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=$(cd "${1:-$ROOT/build-bench}" && pwd)
RUNNER=$BUILD/bin/clsi-runner
PLUGIN=$BUILD/lib/clsi_python_venv.so
PY=/usr/bin/python3
N_HIT=${N_HIT:-200}
N_COLD=${N_COLD:-5}
N_CACHE=${N_CACHE:-8}
DELAY_MS=${DELAY_MS:-50}
STATS="$PY $HERE/stats.py"

for f in "$RUNNER" "$PLUGIN" "$BUILD/bin/clsi-venvs"; do
  [[ -x $f || -f $f ]] || { echo "compare.sh: $f is missing; build with -DCLSI_BUILD_BENCH=ON" >&2; exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clsi-compare-XXXXXX")
SERVER_PIDS=()
cleanup() {
  for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [[ -z ${KEEP:-} ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
# The environment must not switch the plugin or move its store.
unset OVERLEAF_ENABLE_PROJECT_PYTHON_VENV PYTHON_VENVS_DIR

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
say() { printf '%s\n' "$*"; }
die() { printf 'compare.sh: %s\n' "$*" >&2; exit 1; }

# start_server SCRIPT INDEX_DIR DELAY_MS: sets URL; the server is stopped on exit.
start_server() {
  local port_file
  port_file=$(mktemp "$WORK/port-XXXXXX")
  rm -f "$port_file"
  "$PY" "$1" "$2" --port-file "$port_file" --log "$port_file.log" --delay-ms "$3" "${@:4}" &
  SERVER_PIDS+=($!)
  for _ in $(seq 100); do [[ -s $port_file ]] && break; sleep 0.05; done
  [[ -s $port_file ]] || die "the index server $1 did not start"
  URL="http://127.0.0.1:$(cat "$port_file")/simple/"
}

# write_config FILE VENVS_DIR INDEX_URL: the shipped, commented plugin.yaml
# with three settings changed, as an operator would.
write_config() {
  sed -e "s|^  enabled: false|  enabled: true|" \
      -e "s|^  venvs_dir: .*|  venvs_dir: $2|" \
      -e "s|^  index_url: .*|  index_url: $3|" "$ROOT/plugin.yaml" > "$1"
}

# compile CONFIG PROJECT_DIR: one clsi-runner compile of /bin/true. The
# runner appends to output.log: callers that check it empty it first.
compile() {
  "$RUNNER" --plugin "$PLUGIN" --plugin-config "$1" --compile-dir "$2" --project-id bench \
    --user-id bench --allow-python-install --timeout 600 -- /bin/true 2>> "$WORK/runner-stderr.log"
}

machine() {
  say "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -h | awk '/^Mem:/{print $2}') RAM"
  say "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  say "python $($PY -c 'import sys; print(sys.version.split()[0])'), pip $($PY -m pip --version | cut -d' ' -f2)"
}

# ---------------------------------------------------------------------------
# Package indexes. Padded wheels are incompressible random data, so their size
# is what pip downloads, hashes, unzips and writes.
cat > "$WORK/tiny.json" <<'EOF'
[{"name": "alpha", "version": "1.0", "requires": ["beta>=2"],
  "files": {"alpha/__init__.py": "import beta\nMESSAGE = 'alpha ' + beta.VERSION\n"}},
 {"name": "beta", "version": "2.1", "files": {"beta/__init__.py": "VERSION = '2.1'\n"}},
 {"name": "gamma", "version": "0.3", "files": {"gamma/__init__.py": "MESSAGE = 'gamma'\n"}}]
EOF
cat > "$WORK/big.json" <<'EOF'
[{"name": "numlite", "version": "1.4", "files": {"numlite/__init__.py": "X = 1\n"}, "pad_bytes": 8000000},
 {"name": "plotkit", "version": "2.0", "requires": ["numlite>=1"],
  "files": {"plotkit/__init__.py": "import numlite\n"}, "pad_bytes": 3000000},
 {"name": "tablefmt", "version": "0.5", "files": {"tablefmt/__init__.py": "X = 1\n"}, "pad_bytes": 1500000},
 {"name": "dataio", "version": "1.2", "requires": ["tablefmt>=0.5"],
  "files": {"dataio/__init__.py": "import tablefmt\n"}, "pad_bytes": 1000000},
 {"name": "unitconv", "version": "3.1", "requires": ["numlite"],
  "files": {"unitconv/__init__.py": "import numlite\n"}},
 {"name": "textstats", "version": "1.0", "files": {"textstats/__init__.py": "X = 1\n"}},
 {"name": "statsx", "version": "0.9", "requires": ["numlite>=1.2"],
  "files": {"statsx/__init__.py": "import numlite\n"}, "pad_bytes": 2000000}]
EOF
"$PY" "$ROOT/examples/tools/mkindex.py" "$WORK/tiny-index" --spec "$WORK/tiny.json" > /dev/null
"$PY" "$ROOT/examples/tools/mkindex.py" "$WORK/big-index" --spec "$WORK/big.json" > /dev/null

# The last build's duration by the builder's own clock (events.log), in us:
# the build alone, without the compile's polling for its end.
last_build_us() { awk '$2 == "build" {v = $4} END {printf "%d", v * 1000000}' "$1/events.log"; }

mkproject() {  # mkproject DIR REQUIREMENTS
  mkdir -p "$1"
  printf '%s' "$2" > "$1/requirements.txt"
}
# (b): 4 top-level requirements, 6 distributions, ~13.5 MB of wheels.
REQ_COLD=$'plotkit\ndataio\nunitconv\ntextstats\n'
# (c): A and B share numlite, plotkit and tablefmt (12.5 of 14.5 MB of B's wheels).
REQ_A=$'plotkit\ndataio\n'
REQ_B=$'plotkit\ntablefmt\nstatsx\n'

say "== clsi-runner and the python-venv plugin: whole-process comparisons =="
machine
say "build: $BUILD ($(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt"))"
say "work:  $WORK"
T_ALL=$(now_us)

# ---------------------------------------------------------------------------
say ""
say "== (a) cache hit vs plugin off: clsi-runner ... -- /bin/true, $N_HIT runs each, interleaved =="
A=$WORK/a
mkproject "$A/project" $'alpha\ngamma\n'
write_config "$A/plugin.yaml" "$A/venvs" "file://$WORK/tiny-index/simple/"
compile "$A/plugin.yaml" "$A/project" > /dev/null
grep -q "built environment" "$A/project/output.log" || { cat "$A/project/output.log"; die "(a): the first compile did not build"; }
run_on() { compile "$A/plugin.yaml" "$A/project"; }
run_off() { OVERLEAF_ENABLE_PROJECT_PYTHON_VENV=false compile "$A/plugin.yaml" "$A/project"; }
run_none() { "$RUNNER" --compile-dir "$A/project" -- /bin/true; }
SERIES=(on off none)
for _ in $(seq 20); do for s in "${SERIES[@]}"; do "run_$s"; done; done  # warm-up
: > "$A/project/output.log"; run_on; grep -q "reusing environment" "$A/project/output.log" || { cat "$A/project/output.log"; die "(a): plugin on is not a hit"; }
: > "$A/project/output.log"; run_off; ! grep -q "python-venv" "$A/project/output.log" || { cat "$A/project/output.log"; die "(a): plugin off still acts"; }
: > "$A/times"
n=${#SERIES[@]}
for i in $(seq "$N_HIT"); do
  # Rotate the order so drift and cache effects fall on every series alike.
  for j in $(seq 0 $((n - 1))); do
    s=${SERIES[$(((i + j) % n))]}
    t0=$(now_us); "run_$s"; t1=$(now_us)
    echo "plugin-$s $((t1 - t0))" >> "$A/times"
  done
done
$STATS table "$A/times"
$STATS ratio "$A/times" plugin-on plugin-off 1.2
$STATS ratio "$A/times" plugin-on plugin-none -
say "  (hits recorded in events.log: $(grep -c ' hit ' "$A/venvs/events.log"))"
if command -v hyperfine > /dev/null; then
  say "  cross-check with hyperfine (not interleaved: each command's runs in a block):"
  hyperfine -N --style basic --warmup 20 --runs "$N_HIT" \
    -n plugin-on "env OVERLEAF_ENABLE_PROJECT_PYTHON_VENV=true $RUNNER --plugin $PLUGIN --plugin-config $A/plugin.yaml --compile-dir $A/project --project-id bench --user-id bench --allow-python-install --timeout 600 -- /bin/true" \
    -n plugin-off "env OVERLEAF_ENABLE_PROJECT_PYTHON_VENV=false $RUNNER --plugin $PLUGIN --plugin-config $A/plugin.yaml --compile-dir $A/project --project-id bench --user-id bench --allow-python-install --timeout 600 -- /bin/true" \
    --export-json "$A/hyperfine.json" 2>&1 | sed 's/^/    /' | grep -v '^ *$' || true
  "$PY" - "$A/hyperfine.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
on, off = r["plugin-on"]["median"], r["plugin-off"]["median"]
print("    hyperfine medians: on %.2f ms, off %.2f ms, ratio %.3f" % (on * 1e3, off * 1e3, on / off))
EOF
fi

# ---------------------------------------------------------------------------
say ""
say "== (b) cold build: the plugin vs the seed's way, $N_COLD runs each per index, interleaved =="
say "  requirements: ${REQ_COLD//$'\n'/ }(6 distributions, ~13.5 MB of wheels)"
B=$WORK/b
mkproject "$B/project" "$REQ_COLD"
start_server "$ROOT/examples/tools/serve_index.py" "$WORK/big-index" 0
HTTP_URL=$URL
FILE_URL="file://$WORK/big-index/simple/"
plugin_cold() {  # plugin_cold INDEX_URL
  rm -rf "$B/venvs"
  : > "$B/project/output.log"
  write_config "$B/plugin.yaml" "$B/venvs" "$1"
  compile "$B/plugin.yaml" "$B/project" > /dev/null
}
seed_cold() {  # seed_cold INDEX_URL: exactly the seed design's two commands
  rm -rf "$B/seed-venv" "$B/seed-cache"
  # Spared the seed anything spurious: no version check, a fresh pip cache.
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CACHE_DIR="$B/seed-cache" PIP_NO_INPUT=1 \
    timeout 300 bash -c '"$0" -m venv --system-site-packages "$1" && "$1/bin/pip" install --index-url "$2" -r "$3"' \
    "$PY" "$B/seed-venv" "$1" "$B/project/requirements.txt" > "$B/seed.log" 2>&1
}
: > "$B/times"
for i in $(seq "$N_COLD"); do
  for transport in file http; do
    url=$FILE_URL; [[ $transport == http ]] && url=$HTTP_URL
    if (( i % 2 )); then order="plugin seed"; else order="seed plugin"; fi
    for who in $order; do
      t0=$(now_us); "${who}_cold" "$url"; t1=$(now_us)
      if [[ $who == plugin ]]; then
        grep -q "built environment" "$B/project/output.log" || { cat "$B/project/output.log"; die "(b): the plugin did not build"; }
      else
        grep -q "Successfully installed" "$B/seed.log" || { cat "$B/seed.log"; die "(b): the seed's way failed"; }
      fi
      echo "$who-$transport $((t1 - t0))" >> "$B/times"
      if [[ $who == plugin ]]; then
        echo "plugin-$transport-build-only $(last_build_us "$B/venvs")" >> "$B/times"
      fi
    done
  done
done
$STATS table "$B/times"
$STATS ratio "$B/times" plugin-file seed-file 0.5
$STATS ratio "$B/times" plugin-http seed-http 0.5
say "  (plugin-*-build-only: the builder's own clock, from events.log; the rest of the wall time"
say "  is the probe, clsi-runner, and the hook noticing that the build ended)"

say ""
say "  where the seconds go: one build of each (file:// index), every process timed by strace"
say "  (strace -f --seccomp-bpf -e trace=execve: stops only at execve, so it barely slows them)"
rm -rf "$B/venvs"
write_config "$B/plugin.yaml" "$B/venvs" "$FILE_URL"
strace -f --seccomp-bpf -ttt -s 256 -e trace=execve -o "$B/plugin.trace" \
  "$RUNNER" --plugin "$PLUGIN" --plugin-config "$B/plugin.yaml" --compile-dir "$B/project" \
  --allow-python-install --timeout 600 -- /bin/true 2>> "$WORK/runner-stderr.log"
say "  the plugin (clsi-runner -> clsi-venvs build -> python, pip):"
$STATS stages "$B/plugin.trace"
rm -rf "$B/seed-venv" "$B/seed-cache"
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CACHE_DIR="$B/seed-cache" PIP_NO_INPUT=1 \
  strace -f --seccomp-bpf -ttt -s 256 -e trace=execve -o "$B/seed.trace" \
  timeout 300 bash -c '"$0" -m venv --system-site-packages "$1" && "$1/bin/pip" install --index-url "$2" -r "$3"' \
  "$PY" "$B/seed-venv" "$FILE_URL" "$B/project/requirements.txt" > "$B/seed.log" 2>&1
say "  the seed's way:"
$STATS stages "$B/seed.trace"
: > "$B/pip-startup"
for _ in $(seq 5); do
  t0=$(now_us); "$PY" -I -m pip --version > /dev/null; t1=$(now_us)
  echo "python-I-m-pip--version $((t1 - t0))" >> "$B/pip-startup"
  t0=$(now_us); "$PY" -I -c pass; t1=$(now_us)
  echo "python-I-c-pass $((t1 - t0))" >> "$B/pip-startup"
done
say "  fixed costs: starting python, and importing pip"
$STATS table "$B/pip-startup"

# ---------------------------------------------------------------------------
say ""
say "== (c) a build sharing packages with a cached one: download cache kept vs removed =="
say "  A = ${REQ_A//$'\n'/ }(built first, untimed); B = ${REQ_B//$'\n'/ }(timed)"
say "  B's wheels: 14.5 MB, of which 12.5 MB (numlite, plotkit, tablefmt) A downloaded too"
say "  loopback HTTP, ${DELAY_MS} ms per request; $N_CACHE runs per variant, interleaved"
C=$WORK/c
mkproject "$C/project-a" "$REQ_A"
mkproject "$C/project-b" "$REQ_B"
start_server "$ROOT/examples/tools/serve_index.py" "$WORK/big-index" "$DELAY_MS"
URL_PLAIN=$URL
start_server "$ROOT/examples/tools/serve_index.py" "$WORK/big-index" "$DELAY_MS" --cache-headers
URL_PYPI=$URL
second_build() {  # second_build INDEX_URL warm|cold: prints the cache's file count after A
  rm -rf "$C/venvs"
  : > "$C/project-a/output.log"
  : > "$C/project-b/output.log"
  write_config "$C/plugin.yaml" "$C/venvs" "$1"
  compile "$C/plugin.yaml" "$C/project-a" > /dev/null
  grep -q "built environment" "$C/project-a/output.log" || { cat "$C/project-a/output.log"; die "(c): A did not build"; }
  find "$C/venvs/cache/pip" -type f | wc -l > "$C/cache-files"
  if [[ $2 == cold ]]; then rm -rf "$C/venvs/cache/pip"; mkdir "$C/venvs/cache/pip"; fi
  t0=$(now_us); compile "$C/plugin.yaml" "$C/project-b" > /dev/null; t1=$(now_us)
  grep -q "built environment" "$C/project-b/output.log" || { cat "$C/project-b/output.log"; die "(c): B did not build"; }
}
: > "$C/times"
for i in $(seq "$N_CACHE"); do
  for server in no-cache-headers cache-headers; do
    url=$URL_PLAIN; [[ $server == cache-headers ]] && url=$URL_PYPI
    if (( i % 2 )); then order="warm cold"; else order="cold warm"; fi
    for v in $order; do
      second_build "$url" "$v"
      echo "$server-$v-cache $((t1 - t0))" >> "$C/times"
      echo "$server-$v-cache-build-only $(last_build_us "$C/venvs")" >> "$C/times"
      echo "$server-files-cached-after-A $(cat "$C/cache-files")" >> "$C/counts"
    done
  done
done
$STATS table "$C/times"
$STATS speedup "$C/times" no-cache-headers-cold-cache no-cache-headers-warm-cache
$STATS speedup "$C/times" cache-headers-cold-cache cache-headers-warm-cache
$STATS speedup "$C/times" no-cache-headers-cold-cache-build-only no-cache-headers-warm-cache-build-only
$STATS speedup "$C/times" cache-headers-cold-cache-build-only cache-headers-warm-cache-build-only
say "  files in <venvs_dir>/cache/pip after building A:"
sort -u "$C/counts" | sed 's/^/    /'

say ""
say "total time: $(( ($(now_us) - T_ALL) / 1000000 )) s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
