#!/usr/bin/env bash
# Many compiles at once over shared and distinct requirement sets.
#
#   bash bench/bench_concurrency.sh [BUILD_DIR]     BUILD_DIR defaults to build-bench
#
# Each round starts COMPILES clsi-runner compiles (command /bin/true) at the
# same moment, spread over KEYS requirement sets (COMPILES/KEYS projects per
# set), against a fresh store and a file:// index of padded wheels:
#   cold: nothing is cached; exactly one build per set must run, and every
#         compile must end up on its set's venv (none falls back);
#   hot:  the same compiles again, all hits.
# Reports the round's wall time and per-compile p50/p90, and checks the
# builds by counting " build " lines per key in <venvs_dir>/events.log.
#
# Environment: COMPILES (16), KEYS (4), ROUNDS (5), KEEP=1 keeps the work dir.
# About 15 s on 2 cores.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=$(cd "${1:-$ROOT/build-bench}" && pwd)
RUNNER=$BUILD/bin/clsi-runner
PLUGIN=$BUILD/lib/clsi_python_venv.so
PY=/usr/bin/python3
COMPILES=${COMPILES:-16}
KEYS=${KEYS:-4}
ROUNDS=${ROUNDS:-5}
STATS="$PY $HERE/stats.py"
(( KEYS >= 1 && KEYS <= 4 )) || { echo "KEYS must be 1..4" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clsi-concurrency-XXXXXX")
cleanup() { if [[ -z ${KEEP:-} ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi; }
trap cleanup EXIT
unset OVERLEAF_ENABLE_PROJECT_PYTHON_VENV PYTHON_VENVS_DIR
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
die() { printf 'bench_concurrency.sh: %s\n' "$*" >&2; exit 1; }

cat > "$WORK/spec.json" <<'EOF'
[{"name": "numlite", "version": "1.4", "files": {"numlite/__init__.py": "X = 1\n"}, "pad_bytes": 4000000},
 {"name": "plotkit", "version": "2.0", "requires": ["numlite>=1"],
  "files": {"plotkit/__init__.py": "import numlite\n"}, "pad_bytes": 2000000},
 {"name": "tablefmt", "version": "0.5", "files": {"tablefmt/__init__.py": "X = 1\n"}, "pad_bytes": 1500000},
 {"name": "dataio", "version": "1.2", "requires": ["tablefmt>=0.5"],
  "files": {"dataio/__init__.py": "import tablefmt\n"}, "pad_bytes": 1000000},
 {"name": "textstats", "version": "1.0", "files": {"textstats/__init__.py": "X = 1\n"}},
 {"name": "statsx", "version": "0.9", "requires": ["numlite>=1.2"],
  "files": {"statsx/__init__.py": "import numlite\n"}, "pad_bytes": 2000000}]
EOF
"$PY" "$ROOT/examples/tools/mkindex.py" "$WORK/index" --spec "$WORK/spec.json" > /dev/null
SETS=($'plotkit\n' $'dataio\ntextstats\n' $'statsx\ntablefmt\n' $'textstats\n')

echo "== $COMPILES compiles at once over $KEYS requirement sets, $ROUNDS rounds (fresh store each) =="
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for k in $(seq 0 $((KEYS - 1))); do echo "  set $k: ${SETS[$k]//$'\n'/ }"; done

# round NAME STORE: starts every compile at once, waits, records timings.
round() {
  local name=$1 store=$2 t0 t1 i
  for i in $(seq 0 $((COMPILES - 1))); do : > "$store-p$i/output.log"; done  # the runner appends
  t0=$(now_us)
  for i in $(seq 0 $((COMPILES - 1))); do
    (
      s=$(now_us)
      "$RUNNER" --plugin "$PLUGIN" --plugin-config "$store.yaml" --compile-dir "$store-p$i" \
        --project-id "p$i" --user-id bench --allow-python-install --timeout 600 -- /bin/true \
        2>> "$WORK/runner-stderr.log" || echo "compile $i exited $?" >> "$WORK/errors"
      e=$(now_us)
      echo "$name-per-compile $((e - s))" >> "$WORK/times"
    ) &
  done
  wait
  t1=$(now_us)
  echo "$name-round-wall $((t1 - t0))" >> "$WORK/times"
  [[ ! -s $WORK/errors ]] || { cat "$WORK/errors"; die "a compile failed"; }
  for i in $(seq 0 $((COMPILES - 1))); do
    if ! grep -q "QUARTO_PYTHON set by python-venv" "$store-p$i/output.log" ||
      grep -q "base interpreter" "$store-p$i/output.log"; then
      cat "$store-p$i/output.log"
      die "$name: compile $i did not get its venv"
    fi
  done
}

: > "$WORK/times"
for r in $(seq "$ROUNDS"); do
  store=$WORK/round$r
  sed -e "s|^  enabled: false|  enabled: true|" -e "s|^  venvs_dir: .*|  venvs_dir: $store|" \
      -e "s|^  index_url: .*|  index_url: file://$WORK/index/simple/|" "$ROOT/plugin.yaml" > "$store.yaml"
  for i in $(seq 0 $((COMPILES - 1))); do
    mkdir -p "$store-p$i"
    printf '%s' "${SETS[$((i % KEYS))]}" > "$store-p$i/requirements.txt"
  done
  round cold "$store"
  builds=$(grep -c ' build ' "$store/events.log" || true)
  per_key=$(awk '$2 == "build" {print $3}' "$store/events.log" | sort | uniq -c | awk '{print $1}' | sort -u | tr '\n' ' ')
  keys=$(awk '$2 == "build" {print $3}' "$store/events.log" | sort -u | wc -l)
  failures=$(grep -c ' failure ' "$store/events.log" || true)
  waited=$(grep -l "waiting for another compile's build" "$store"-p*/output.log | wc -l)
  echo "  round $r: $builds builds for $keys keys (builds per key: $per_key), $failures failures," \
       "$waited compiles waited for another's build"
  (( builds == KEYS && keys == KEYS && failures == 0 )) || die "round $r: expected exactly one build per key"
  round hot "$store"
  hits=$(grep -c ' hit ' "$store/events.log" || true)
  (( $(grep -c ' build ' "$store/events.log") == KEYS )) || die "round $r: the hot round built again"
  echo "           hot round: $hits hits recorded, no new build"
done
echo ""
$STATS table "$WORK/times"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
