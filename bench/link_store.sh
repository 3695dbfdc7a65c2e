#!/usr/bin/env bash
# The link store (issue 14), side by side with the seed's way in one run:
# the plugin (clsi-runner -> the build service, clsi-venvs serve) against
#   python3 -m venv --system-site-packages DIR && DIR/bin/pip install --index-url URL -r requirements.txt
# over one file:// index made here by examples/tools/mkindex.py (TRANSPORT=http:
# the same index over loopback HTTP, examples/tools/serve_index.py).
#
#   (1) cold build, two tiny wheels (beta, gamma)                          N_COLD runs each
#   (2) cold build, 30 small wheels in a chain (p01 requires p02 ... p30)   N_COLD runs each
#   (3) cold build, a heavy wheel shaped like scipy (HEAVY_FILES files,     N_HEAVY runs each
#       ~HEAVY_MB MB installed: Python modules plus incompressible .so
#       blobs). Target: plugin / seed <= 0.9. Then where the plugin's time
#       goes: its phases (the compile's lines, timestamped as they arrive),
#       the processes the service starts (strace -f -e trace=execve), the
#       build log, and what unzip, byte-compile, hashing and hard-linking the
#       tree cost on their own
#   (4) a second venv in (3)'s store: (a) heavy + one new tiny package,     N_SHARED runs each
#       (b) a new key whose distributions are all in the store (heavy!=0.0.N
#       + the tiny package of (a)): seconds, and the store's extra disk
#       (du -s, hard links counted once) vs the seed's second venv.
#       Target: plugin / seed <= 0.05
#   (5) N_TEN venvs sharing the heavy wheel, each adding a different tiny
#       package, in a fresh store: the store's disk vs N_TEN seed venvs and
#       vs the same store holding one of them. Target: ten / one <= 1.1
#   (6) cache hit (plugin on) vs the plugin off, clsi-runner ... -- /bin/true,
#       interleaved, as bench/compare.sh (a) does, on a tiny venv and on a
#       heavy one of (5)'s store. Target: on / off <= 1.05
#
#   bash bench/link_store.sh [BUILD_DIR]      BUILD_DIR defaults to build-bench
#
# Environment: N_COLD (3), N_HEAVY (2), N_SHARED (1), N_TEN (10), N_HIT (200),
# HEAVY_FILES (17395: files in the heavy wheel), HEAVY_MB (270: its installed
# size, .pyc included, apparent bytes), HEAVY_PY_MB (HEAVY_MB*4/27: of which
# .py sources; the rest, less the .pyc, is HEAVY_BLOBS (40) blobs),
# PROFILE (1: the profile of (3); 0: skipped), PROFILE_SYSCALLS (0; 1: also
# one build with the service under strace -f -c, which slows it a lot),
# SCENARIOS ("1 2 3 4 5 6"; 4 needs 3), TRANSPORT (file; http),
# KEEP=1 keeps the work directory.
# About 11-12 minutes at the defaults on 2 cores against the pip-based installer
# (and up to a minute more to remove the work directory: ~4 GB, ~400,000 files).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=$(cd "${1:-$ROOT/build-bench}" && pwd)
RUNNER=$BUILD/bin/clsi-runner
PLUGIN=$BUILD/lib/clsi_python_venv.so
VENVS_BIN=$BUILD/bin/clsi-venvs
PY=/usr/bin/python3
N_COLD=${N_COLD:-3}
N_HEAVY=${N_HEAVY:-2}
N_SHARED=${N_SHARED:-1}
N_TEN=${N_TEN:-10}
N_HIT=${N_HIT:-200}
HEAVY_FILES=${HEAVY_FILES:-17395}
HEAVY_MB=${HEAVY_MB:-270}
HEAVY_PY_MB=${HEAVY_PY_MB:-$(( (HEAVY_MB * 4 + 13) / 27 ))}
HEAVY_BLOBS=${HEAVY_BLOBS:-40}
PROFILE=${PROFILE:-1}
PROFILE_SYSCALLS=${PROFILE_SYSCALLS:-0}
SCENARIOS=" ${SCENARIOS:-1 2 3 4 5 6} "
TRANSPORT=${TRANSPORT:-file}
[[ $TRANSPORT == file || $TRANSPORT == http ]] || { echo "link_store.sh: TRANSPORT is file or http" >&2; exit 2; }
STATS="$PY $HERE/stats.py"

for f in "$RUNNER" "$PLUGIN" "$VENVS_BIN"; do
  [[ -x $f || -f $f ]] || { echo "link_store.sh: $f is missing; build with -DCLSI_BUILD_BENCH=ON" >&2; exit 2; }
done
(( N_TEN >= 2 )) || { echo "link_store.sh: N_TEN must be at least 2" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clsi-links-XXXXXX")
SERVICE_PID=
SERVICE_TRACED=
HELPER_PIDS=()
stop_service() {
  if [[ -n $SERVICE_PID ]]; then
    # Under strace, the service is strace's child: stopped first, so that
    # strace writes its summary and exits with it.
    if [[ -n $SERVICE_TRACED ]]; then
      for c in $(ps -o pid= --ppid "$SERVICE_PID"); do kill "$c" 2>/dev/null || true; done
    else
      kill "$SERVICE_PID" 2>/dev/null || true
    fi
    wait "$SERVICE_PID" 2>/dev/null || true
    SERVICE_PID=
  fi
}
cleanup() {
  stop_service
  for p in "${HELPER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [[ -z ${KEEP:-} ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
# The environment must not switch the plugin or move its store.
unset OVERLEAF_ENABLE_PROJECT_PYTHON_VENV PYTHON_VENVS_DIR

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
say() { printf '%s\n' "$*"; }
die() { printf 'link_store.sh: %s\n' "$*" >&2; exit 1; }
want() { [[ $SCENARIOS == *" $1 "* ]]; }
kb() { du -sk "$@" | awk '{s += $1} END {print s}'; }  # one du: hard links counted once
mb() { awk -v k="$1" 'BEGIN {printf "%.1f MB", k / 1024}'; }

machine() {
  say "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -h | awk '/^Mem:/{print $2}') RAM"
  say "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  say "python $($PY -c 'import sys; print(sys.version.split()[0])'), pip $($PY -m pip --version | cut -d' ' -f2)"
  say "filesystem of the work directory: $(df -T "$WORK" | awk 'NR==2 {print $2}')"
}

# ---------------------------------------------------------------------------
# The build service. A fresh store (venvs_dir) gets a fresh service: it holds
# the store's service.lock. The shipped, commented plugin.yaml with these
# settings changed, as an operator would: enabled, venvs_dir, index_url, the
# socket, no metrics listener (another service may hold 127.0.0.1:9477), and
# caps wide enough for the heavy venv at any HEAVY_FILES.
N_STORES=0
# start_service VENVS_DIR: sets CONFIG; stops the one running.
start_service() {
  stop_service
  N_STORES=$((N_STORES + 1))
  CONFIG=$WORK/plugin-$N_STORES.yaml
  SERVICE_LOG=$WORK/service-$N_STORES.log
  local socket=$WORK/s$N_STORES.sock
  sed -e "s|^  enabled: false|  enabled: true|" \
      -e "s|^  venvs_dir: .*|  venvs_dir: $1|" \
      -e "s|^  index_url: .*|  index_url: $INDEX_URL|" \
      -e "s|^    socket: .*|    socket: $socket|" \
      -e "s|^    metrics_address: .*|    metrics_address: \"off\"|" \
      -e "s|^    max_venv_mb: .*|    max_venv_mb: 16384|" \
      -e "s|^    max_venv_files: .*|    max_venv_files: 1000000|" "$ROOT/plugin.yaml" > "$CONFIG"
  "${SERVICE_PREFIX[@]}" "$VENVS_BIN" serve --config "$CONFIG" > "$SERVICE_LOG" 2>&1 &
  SERVICE_PID=$!
  SERVICE_TRACED=${SERVICE_PREFIX[*]}
  for _ in $(seq 300); do
    grep -q "listening on" "$SERVICE_LOG" 2>/dev/null && return 0
    kill -0 "$SERVICE_PID" 2>/dev/null || break
    sleep 0.05
  done
  cat "$SERVICE_LOG" >&2
  die "clsi-venvs serve did not start"
}
SERVICE_PREFIX=()  # e.g. (strace -f -o FILE): how the next service is started

# compile PROJECT_DIR: one clsi-runner compile of /bin/true (waits for the
# build when there is one). The runner appends to output.log: emptied first.
compile() {
  "$RUNNER" --plugin "$PLUGIN" --plugin-config "$CONFIG" --compile-dir "$1" --project-id bench \
    --user-id bench --allow-python-install --timeout 900 -- /bin/true 2>> "$WORK/runner-stderr.log"
}
RUNNER_CMD="clsi-runner --plugin clsi_python_venv.so --plugin-config plugin.yaml --compile-dir PROJECT --project-id bench --user-id bench --allow-python-install --timeout 900 -- /bin/true"
SEED_CMD="python3 -m venv --system-site-packages DIR && DIR/bin/pip install --index-url INDEX_URL -r PROJECT/requirements.txt"

# plugin_build PROJECT_DIR [STAMPED]: times one compile that must build into
# T (us) and BUILD_ONLY (us, the builder's own clock from events.log). With
# STAMPED, every line the compile adds to output.log is written there with
# the time it arrived.
plugin_build() {
  : > "$1/output.log"
  local t0 t1 pid spid
  sync  # what earlier steps wrote is on disk: writeback does not slow this build
  t0=$(now_us)
  if [[ -n ${2:-} ]]; then
    compile "$1" > /dev/null &
    pid=$!
    tail -n +1 -s 0.02 --pid="$pid" -F "$1/output.log" 2> /dev/null |
      while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done > "$2" &
    spid=$!
    wait "$pid" || true
    t1=$(now_us)
    wait "$spid" 2> /dev/null || true
  else
    compile "$1" > /dev/null
    t1=$(now_us)
  fi
  grep -q "built environment" "$1/output.log" || { cat "$1/output.log"; cat "$SERVICE_LOG"; die "the plugin did not build $1"; }
  T=$((t1 - t0))
  BUILD_ONLY=$(awk '$2 == "build" {v = $4} END {printf "%d", v * 1000000}' "$(store_of)/events.log")
}
store_of() { sed -n 's/^  venvs_dir: //p' "$CONFIG"; }

# seed_build DIR REQUIREMENTS_FILE: exactly the seed design's two commands,
# spared anything spurious (no version check, a fresh pip cache); sets T.
seed_build() {
  rm -rf "$1" "$1.cache"
  local t0 t1
  sync
  t0=$(now_us)
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CACHE_DIR="$1.cache" PIP_NO_INPUT=1 \
    timeout 900 bash -c '"$0" -m venv --system-site-packages "$1" && "$1/bin/pip" install --index-url "$2" -r "$3"' \
    "$PY" "$1" "$INDEX_URL" "$2" > "$1.log" 2>&1 || true
  t1=$(now_us)
  grep -q "Successfully installed" "$1.log" || { cat "$1.log"; die "the seed's way failed for $2"; }
  rm -rf "$1.cache"
  T=$((t1 - t0))
}

mkproject() {  # mkproject DIR REQUIREMENTS
  mkdir -p "$1"
  printf '%s' "$2" > "$1/requirements.txt"
}

# cold_pair NAME REQUIREMENTS RUNS TARGET: fresh store and service per plugin
# run; the order alternates so drift falls on both alike.
cold_pair() {
  local req=$2 runs=$3 target=$4 dir=$WORK/$1 i who
  mkproject "$dir/project" "$req"
  : > "$dir/times"
  for i in $(seq "$runs"); do
    if (( i % 2 )); then order="plugin seed"; else order="seed plugin"; fi
    for who in $order; do
      if [[ $who == plugin ]]; then
        rm -rf "$dir/venvs"
        start_service "$dir/venvs"
        plugin_build "$dir/project" "$dir/stamped-$i"
        echo "plugin-cold $T" >> "$dir/times"
        echo "plugin-build-only $BUILD_ONLY" >> "$dir/times"
      else
        seed_build "$dir/seed-venv" "$dir/project/requirements.txt"
        echo "seed $T" >> "$dir/times"
      fi
    done
  done
  $STATS table "$dir/times"
  $STATS ratio "$dir/times" plugin-cold seed "$target"
  # On a shared machine a few runs' median is at the mercy of the neighbours;
  # the fastest run of each is what each can do.
  awk '$1 == "plugin-cold" && (!p || $2 < p) {p = $2} $1 == "seed" && (!s || $2 < s) {s = $2}
       END {printf "  ratio min(plugin-cold) / min(seed) = %.3f   (the fastest run of each)\n", p / s}' "$dir/times"
}

# phases STAMPED: the compile's lines with when they arrived, from the first.
phases() {
  "$PY" - "$1" <<'EOF'
import sys
rows = []
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    t, _, text = line.rstrip("\n").partition(" ")
    if text.startswith("[python-venv]"):
        rows.append((float(t), text[len("[python-venv] "):]))
if not rows:
    sys.exit(0)
t0 = rows[0][0]
for i, (t, text) in enumerate(rows):
    nxt = rows[i + 1][0] if i + 1 < len(rows) else t
    print("    +%6.2f s  (%6.2f s until the next line)  %s" % (t - t0, nxt - t, text[:90]))
EOF
}

# processes TRACE B0 B1: the processes in an strace -f -ttt -e
# trace=execve,clone,clone3,fork,vfork log that ran between B0 and B1 (epoch
# seconds), grouped by what they are and indented under the process that
# started them: count, first start (from B0), summed and spanned seconds.
processes() {
  "$PY" - "$1" "$2" "$3" <<'EOF'
import re, sys
trace, b0, b1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")
started, argvs, parent, done, root = {}, {}, {}, [], None
def label(argv):
    a = " ".join(argv)
    exe = argv[0].rsplit("/", 1)[-1] if argv else "?"
    m = re.search(r"-m (pip) (\w+)", a)
    if m:
        return "pip %s%s" % (m.group(2), " --dry-run (resolve)" if "--dry-run" in a else "")
    if "--dry-run" in a and "--report" in a:  # through plugin/src/pip_resolve_shim.hpp
        return "pip install --dry-run (resolve, via the shim)"
    if "-m venv" in a:
        return "python -m venv" + (" --without-pip" if "--without-pip" in a else "")
    if "ensurepip" in a:
        return "ensurepip"
    if "compileall" in a or "py_compile" in a:
        return "python byte-compile"
    if exe.startswith("python") and " -c " in a:
        return "python -c (a probe or a check)"
    return " ".join([exe] + argv[1:3])[:48]
for line in open(trace):
    m = LINE.match(line)
    if not m:
        continue
    pid, t, rest = m.group(1), float(m.group(2)), m.group(3)
    if rest.startswith("execve(") and " = -1 " not in rest:
        if root is None:
            root = pid
        started[pid] = t
        argvs[pid] = re.findall(r'"((?:[^"\\]|\\.)*)"', rest.split("], 0x")[0])[1:]
    elif ("clone" in rest or "fork" in rest) and re.search(r"= (\d+)$", rest):
        parent[re.search(r"= (\d+)$", rest).group(1)] = pid
    elif rest.startswith("+++ exited") or rest.startswith("+++ killed"):
        if pid in started and pid != root:
            done.append((started[pid], t, pid))
            del started[pid]
execd = set(argvs)
def ancestors(pid):  # the processes (that ran execve) above pid, nearest first
    out, p = [], parent.get(pid)
    while p is not None and p != root:
        if p in execd:
            out.append(p)
        p = parent.get(p)
    return out
done = [d for d in done if d[1] >= b0 and d[0] <= b1]
groups = {}
for s, e, pid in done:
    up = ancestors(pid)
    key = tuple(label(argvs[a]) for a in reversed(up)) + (label(argvs[pid]),)
    g = groups.setdefault(key, [s, 0.0, 0, s, e])
    g[1] += e - s; g[2] += 1; g[3] = min(g[3], s); g[4] = max(g[4], e)
# Each group after its parent group, in the order they first started.
def sort_key(k):
    return [groups[k[:i + 1]][0] if k[:i + 1] in groups else 0.0 for i in range(len(k))]
print("    %-48s %5s %9s %9s %9s" % ("process (under the one that started it)", "n", "first at",
                                      "sum", "span"))
for key in sorted(groups, key=sort_key):
    first, tot, n, s, e = groups[key]
    name = "  " * (len(key) - 1) + key[-1]
    print("    %-48s %5d %8.2fs %8.2fs %8.2fs" % (name[:48], n, first - b0, tot, e - s))
# The service's own work (unzip, link, records, checks): the build's span not
# covered by a process the service started itself.
iv = sorted((max(s, b0), min(e, b1)) for s, e, pid in done if not ancestors(pid))
covered, cur_s, cur_e = 0.0, None, None
for s, e in iv:
    if cur_e is None or s > cur_e:
        if cur_e is not None:
            covered += cur_e - cur_s
        cur_s, cur_e = s, e
    else:
        cur_e = max(cur_e, e)
if cur_e is not None:
    covered += cur_e - cur_s
print("    the build's %.2f s: %.2f s in processes the service started, %.2f s in the service itself"
      % (b1 - b0, covered, (b1 - b0) - covered))
EOF
}

# ---------------------------------------------------------------------------
# One index for every scenario.
NT=$(( (N_SHARED > N_TEN ? N_SHARED : N_TEN) + 1 ))
HEAVY_PY_FILES=$((HEAVY_FILES - HEAVY_BLOBS - 3))  # the dist-info holds METADATA, WHEEL, RECORD
(( HEAVY_PY_FILES >= 1 )) || die "HEAVY_FILES must be above HEAVY_BLOBS + 3"
# .pyc of these modules: about 1.08 times their source (measured on CPython 3.11).
HEAVY_BLOB_BYTES=$(awk -v t="$HEAVY_MB" -v p="$HEAVY_PY_MB" 'BEGIN {b = (t - 2.08 * p) * 1048576; printf "%d", b < 0 ? 0 : b}')
"$PY" - "$WORK/spec.json" "$NT" "$HEAVY_PY_FILES" "$((HEAVY_PY_MB * 1048576))" "$HEAVY_BLOBS" "$HEAVY_BLOB_BYTES" <<'EOF'
import json, sys
out, nt, py_files, py_bytes, blobs, blob_bytes = sys.argv[1], *map(int, sys.argv[2:])
spec = [
    {"name": "alpha", "version": "1.0", "requires": ["beta>=2"],
     "files": {"alpha/__init__.py": "import beta\nMESSAGE = 'alpha ' + beta.VERSION\n"}},
    {"name": "beta", "version": "2.1", "files": {"beta/__init__.py": "VERSION = '2.1'\n"}},
    {"name": "gamma", "version": "0.3", "files": {"gamma/__init__.py": "MESSAGE = 'gamma'\n"}},
    {"name": "heavy", "version": "1.0",
     "generated": {"py_files": py_files, "py_bytes": py_bytes, "blobs": blobs, "blob_bytes": blob_bytes}},
]
for i in range(1, 31):  # p01 requires p02 ... p29 requires p30; 4 modules, ~8 KB each
    s = {"name": "p%02d" % i, "version": "1.%d" % i,
         "generated": {"py_files": 4, "py_bytes": 8000}}
    if i < 30:
        s["requires"] = ["p%02d>=1" % (i + 1)]
    spec.append(s)
for i in range(1, nt + 1):
    spec.append({"name": "t%02d" % i, "version": "0.1",
                 "files": {"t%02d/__init__.py" % i: "NAME = 't%02d'\n" % i}})
json.dump(spec, open(out, "w"))
EOF
T_ALL=$(now_us)
"$PY" "$ROOT/examples/tools/mkindex.py" "$WORK/index" --spec "$WORK/spec.json" > /dev/null
T_INDEX=$(( ($(now_us) - T_ALL) / 1000 ))
INDEX_URL="file://$WORK/index/simple/"
if [[ $TRANSPORT == http ]]; then
  # Loopback HTTP, sending PyPI's cache headers (pip then caches the wheels
  # in the store's cache/pip, which du of the store counts).
  "$PY" "$ROOT/examples/tools/serve_index.py" "$WORK/index" --port-file "$WORK/port" \
    --log "$WORK/index-requests.log" --cache-headers &
  HELPER_PIDS+=($!)
  for _ in $(seq 100); do [[ -s $WORK/port ]] && break; sleep 0.05; done
  [[ -s $WORK/port ]] || die "the index server did not start"
  INDEX_URL="http://127.0.0.1:$(cat "$WORK/port")/simple/"
fi
HEAVY_WHL=$(ls "$WORK"/index/files/heavy-*.whl)
read -r HEAVY_N HEAVY_UNZ < <("$PY" -c 'import sys, zipfile; l = zipfile.ZipFile(sys.argv[1]).infolist(); print(len(l), sum(i.file_size for i in l))' "$HEAVY_WHL")

say "== the link store (issue 14): the plugin vs the seed's way, side by side =="
machine
say "build: $BUILD ($(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt"))"
say "work:  $WORK"
say "index: $INDEX_URL ($TRANSPORT), made by examples/tools/mkindex.py in $T_INDEX ms"
say "  heavy-1.0: $HEAVY_N files ($HEAVY_PY_FILES .py modules, $HEAVY_PY_MB MB; $HEAVY_BLOBS .so blobs), $(mb $((HEAVY_UNZ / 1024))) unpacked, $(mb $(( $(stat -c %s "$HEAVY_WHL") / 1024))) wheel"
say "the plugin: $RUNNER_CMD"
say "  (a fresh store and clsi-venvs serve --config plugin.yaml for each cold build; the compile waits for the build)"
say "the seed:   $SEED_CMD"
say "  (with PIP_DISABLE_PIP_VERSION_CHECK=1 and a fresh PIP_CACHE_DIR)"

# ---------------------------------------------------------------------------
if want 1; then
  say ""
  say "== (1) cold build, two tiny wheels: requirements beta gamma; $N_COLD run(s) each, interleaved =="
  cold_pair s1 $'beta\ngamma\n' "$N_COLD" -
fi

if want 2; then
  say ""
  say "== (2) cold build, 30 small wheels in a chain: requirements p01 (p01 -> p02 -> ... -> p30); $N_COLD run(s) each =="
  cold_pair s2 $'p01\n' "$N_COLD" -
fi

# ---------------------------------------------------------------------------
if want 3; then
  say ""
  say "== (3) cold build, the heavy wheel: requirements heavy; $N_HEAVY run(s) each, interleaved =="
  cold_pair s3 $'heavy\n' "$N_HEAVY" 0.9
  S3=$WORK/s3
  HEAVY_STORE_KB=$(kb "$S3/venvs")
  SEED_HEAVY_KB=$(kb "$S3/seed-venv")
  say "  disk: the plugin's store $(mb "$HEAVY_STORE_KB") (du -s $(basename "$S3")/venvs); the seed's venv $(mb "$SEED_HEAVY_KB")"
  if [[ -d $S3/venvs/dists ]]; then
    say "  of the store (du -s dists envs cache, one invocation: a linked file counts in dists):"
    (cd "$S3/venvs" && du -sk dists envs cache 2> /dev/null | awk '{printf "    %-8s %8.1f MB\n", $2, $1 / 1024}')
  fi
  say "  the heavy venv's files: $(find "$S3/venvs/envs" -mindepth 1 | wc -l) (files, directories, links), seed's: $(find "$S3/seed-venv" -mindepth 1 | wc -l)"

  if [[ $PROFILE == 1 ]]; then
    say ""
    say "  -- where the plugin's cold build of the heavy wheel goes (one more build, the service under"
    say "     strace -f --seccomp-bpf -e trace=execve,clone,clone3,fork,vfork: it stops only at those) --"
    P=$WORK/s3p
    mkproject "$P/project" $'heavy\n'
    SERVICE_PREFIX=(strace -f --seccomp-bpf -ttt -s 512 -e "trace=execve,clone,clone3,fork,vfork" -o "$P/service.trace")
    start_service "$P/venvs"
    SERVICE_PREFIX=()
    plugin_build "$P/project" "$P/stamped"
    stop_service
    say "  this build: $(awk -v t="$T" 'BEGIN {printf "%.2f s", t / 1e6}') (compile), $(awk -v t="$BUILD_ONLY" 'BEGIN {printf "%.2f s", t / 1e6}') (the builder's clock)"
    say "  the compile's lines, timestamped as they reached output.log:"
    phases "$P/stamped"
    b0=$(awk '/building environment/ {print $1; exit}' "$P/stamped")
    b1=$(awk '/built environment/ {print $1; exit}' "$P/stamped")
    [[ -n $b0 ]] || b0=$(awk 'NR == 1 {print $1}' "$P/stamped")
    [[ -n $b1 ]] || b1=$(awk 'END {print $1}' "$P/stamped")
    say "  the processes the service started during the build (from 'building' to 'built'):"
    processes "$P/service.trace" "$b0" "$b1"
    KEYLOG=$(ls "$P"/venvs/logs/*.log | head -1)
    say "  the build log ($(basename "$(dirname "$KEYLOG")")/$(basename "$KEYLOG" | cut -c1-12)...log), the service's own lines:"
    grep '^\[python-venv\]' "$KEYLOG" | cut -c1-110 | sed 's/^/    /'
    say "  the same work, alone (the heavy wheel, on this machine's disk):"
    : > "$P/parts"
    X=$P/unzipped
    t0=$(now_us); sha256sum "$HEAVY_WHL" > /dev/null; t1=$(now_us)
    echo "sha256-of-the-wheel $((t1 - t0))" >> "$P/parts"
    t0=$(now_us); "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$HEAVY_WHL" "$X"; t1=$(now_us)
    echo "unzip-(python-zipfile) $((t1 - t0))" >> "$P/parts"
    t0=$(now_us); "$PY" -m compileall -q "$X" > /dev/null; t1=$(now_us)
    echo "byte-compile-(compileall) $((t1 - t0))" >> "$P/parts"
    sync
    t0=$(now_us); cp -al "$X" "$P/linked"; t1=$(now_us)
    echo "hard-link-the-tree-(cp-al) $((t1 - t0))" >> "$P/parts"
    t0=$(now_us); cp -a "$X" "$P/copied"; t1=$(now_us)
    echo "copy-the-tree-(cp-a) $((t1 - t0))" >> "$P/parts"
    t0=$(now_us); rm -rf "$P/copied"; t1=$(now_us)
    echo "remove-a-copy-(rm-rf) $((t1 - t0))" >> "$P/parts"
    t0=$(now_us); find "$X" | wc -l > /dev/null; t1=$(now_us)
    echo "walk-the-tree-(find) $((t1 - t0))" >> "$P/parts"
    $STATS table "$P/parts"
    say "    ($(find "$P/linked" -type f | wc -l) files after byte-compiling)"
    rm -rf "$X" "$P/linked"
    if [[ $PROFILE_SYSCALLS == 1 ]]; then
      say "  -- one more build, the service under strace -f -c (slowed by it), by number of calls --"
      rm -rf "$P/venvs"
      SERVICE_PREFIX=(strace -f -c -S calls -o "$P/syscalls")
      start_service "$P/venvs"
      SERVICE_PREFIX=()
      plugin_build "$P/project"
      stop_service
      head -n 22 "$P/syscalls" | sed 's/^/    /'
    fi
  fi
fi

# ---------------------------------------------------------------------------
if want 4; then
  want 3 || die "scenario 4 needs scenario 3 (its store)"
  say ""
  say "== (4) a second venv beside (3)'s: (a) heavy + a new tiny package; (b) a new key whose distributions"
  say "   are all in the store (heavy!=0.0.N + (a)'s tiny package); $N_SHARED run(s) each; du -s of the store before/after =="
  D=$WORK/s4
  mkdir -p "$D"
  start_service "$S3/venvs"
  : > "$D/times"; : > "$D/disk"
  for i in $(seq "$N_SHARED"); do
    tp=$(printf 't%02d' "$i")
    mkproject "$D/a$i" "heavy"$'\n'"$tp"$'\n'
    mkproject "$D/b$i" "heavy!=0.0.$i"$'\n'"$tp"$'\n'
    before=$(kb "$S3/venvs")
    plugin_build "$D/a$i" "$D/stamped-a$i"
    after=$(kb "$S3/venvs")
    echo "plugin-a-new-tiny-package $T" >> "$D/times"
    echo "plugin-a-build-only $BUILD_ONLY" >> "$D/times"
    echo "plugin-a-extra-kb $((after - before))" >> "$D/disk"
    plugin_build "$D/b$i" "$D/stamped-b$i"
    after2=$(kb "$S3/venvs")
    echo "plugin-b-all-in-store $T" >> "$D/times"
    echo "plugin-b-build-only $BUILD_ONLY" >> "$D/times"
    echo "plugin-b-extra-kb $((after2 - after))" >> "$D/disk"
    seed_build "$D/seed-$i" "$D/a$i/requirements.txt"
    echo "seed-second-venv $T" >> "$D/times"
    echo "seed-extra-kb $(kb "$D/seed-$i")" >> "$D/disk"
    rm -rf "$D/seed-$i"
  done
  stop_service
  say "  commands: the plugin as above on a/requirements.txt then b/requirements.txt, in (3)'s store"
  say "  (service running, heavy-1.0 built there); the seed's way on a/requirements.txt into a new DIR"
  $STATS table "$D/times"
  $STATS ratio "$D/times" plugin-a-new-tiny-package seed-second-venv 0.05
  $STATS ratio "$D/times" plugin-b-all-in-store seed-second-venv 0.05
  "$PY" - "$D/disk" <<'EOF'
import statistics, sys
s = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    s.setdefault(k, []).append(float(v))
m = {k: statistics.median(v) for k, v in s.items()}
print("  extra disk (median KB): (a) %.0f KB = %.1f MB, (b) %.0f KB = %.1f MB; the seed's second venv %.1f MB"
      % (m["plugin-a-extra-kb"], m["plugin-a-extra-kb"] / 1024, m["plugin-b-extra-kb"],
         m["plugin-b-extra-kb"] / 1024, m["seed-extra-kb"] / 1024))
print("  ratio extra disk (a) / seed's = %.3f; (b) / seed's = %.3f   (for scale; no target)"
      % (m["plugin-a-extra-kb"] / m["seed-extra-kb"], m["plugin-b-extra-kb"] / m["seed-extra-kb"]))
EOF
  # a1 is the first build of a service started on (3)'s store: it reads the
  # heavy distribution's manifest (dist_store.hpp); the later builds find it
  # parsed (manifest_cache.hpp). The last (b) build is the target's case.
  say "  the first (a) build's lines (the service's first build), timestamped:"
  phases "$D/stamped-a1"
  say "  the last (b) build's lines, timestamped:"
  phases "$D/stamped-b$N_SHARED"
fi

# ---------------------------------------------------------------------------
if want 5; then
  say ""
  say "== (5) $N_TEN venvs sharing the heavy wheel, each adding a different tiny package (heavy + t01 ... t$(printf '%02d' "$N_TEN")), in a fresh store =="
  F=$WORK/s5
  mkdir -p "$F"
  rm -rf "$F/venvs"
  start_service "$F/venvs"
  : > "$F/times"
  SEEDS=()
  for i in $(seq "$N_TEN"); do
    tp=$(printf 't%02d' "$i")
    mkproject "$F/p$i" "heavy"$'\n'"$tp"$'\n'
    plugin_build "$F/p$i"
    if (( i == 1 )); then
      echo "plugin-first-venv $T" >> "$F/times"
      ONE_KB=$(kb "$F/venvs")
    else
      echo "plugin-later-venv $T" >> "$F/times"
    fi
    seed_build "$F/seed-$i" "$F/p$i/requirements.txt"
    echo "seed-venv $T" >> "$F/times"
    SEEDS+=("$F/seed-$i")
    (( i == 1 )) && SEED_ONE_KB=$(kb "$F/seed-1")
  done
  TEN_KB=$(kb "$F/venvs")
  SEED_TEN_KB=$(kb "${SEEDS[@]}")
  $STATS table "$F/times"
  $STATS ratio "$F/times" plugin-later-venv seed-venv -
  say "  disk (du -s, one invocation each: hard links counted once):"
  say "    the store with 1 venv:   $(mb "$ONE_KB")"
  say "    the store with $N_TEN venvs:  $(mb "$TEN_KB")"
  say "    1 seed venv:             $(mb "$SEED_ONE_KB")"
  say "    $N_TEN seed venvs:           $(mb "$SEED_TEN_KB")"
  if [[ -d $F/venvs/dists ]]; then
    (cd "$F/venvs" && du -sk dists envs cache 2> /dev/null | awk '{printf "    of the store: %-8s %8.1f MB\n", $2, $1 / 1024}')
  fi
  printf 'store-ten %s\nstore-one %s\nseed-ten %s\nseed-one %s\n' "$TEN_KB" "$ONE_KB" "$SEED_TEN_KB" "$SEED_ONE_KB" > "$F/disk"
  $STATS ratio "$F/disk" store-ten store-one 1.1
  $STATS ratio "$F/disk" store-ten seed-ten -
  $STATS ratio "$F/disk" seed-ten seed-one -
  rm -rf "${SEEDS[@]}"
fi

# ---------------------------------------------------------------------------
if want 6; then
  say ""
  say "== (6) cache hit vs plugin off: clsi-runner ... -- /bin/true, $N_HIT runs each, interleaved (as compare.sh (a)) =="
  H=$WORK/s6
  mkdir -p "$H"
  if want 5; then
    start_service "$F/venvs"
    HEAVY_PROJECT=$F/p1
  else
    start_service "$H/venvs"
    HEAVY_PROJECT=
  fi
  mkproject "$H/tiny" $'alpha\ngamma\n'
  plugin_build "$H/tiny"
  run_on_tiny() { compile "$H/tiny"; }
  run_on_heavy() { compile "$HEAVY_PROJECT"; }
  run_off() { OVERLEAF_ENABLE_PROJECT_PYTHON_VENV=false compile "$H/tiny"; }
  SERIES=(on_tiny off)
  [[ -n $HEAVY_PROJECT ]] && SERIES+=(on_heavy)
  for _ in $(seq 20); do for s in "${SERIES[@]}"; do "run_$s"; done; done  # warm-up
  for p in "$H/tiny" $HEAVY_PROJECT; do
    : > "$p/output.log"; compile "$p"
    grep -q "reusing environment" "$p/output.log" || { cat "$p/output.log"; die "(6): plugin on is not a hit in $p"; }
  done
  : > "$H/tiny/output.log"; run_off
  ! grep -q "python-venv" "$H/tiny/output.log" || { cat "$H/tiny/output.log"; die "(6): plugin off still acts"; }
  : > "$H/times"
  n=${#SERIES[@]}
  for i in $(seq "$N_HIT"); do
    for j in $(seq 0 $((n - 1))); do
      s=${SERIES[$(((i + j) % n))]}
      t0=$(now_us); "run_$s"; t1=$(now_us)
      echo "plugin-${s/_/-} $((t1 - t0))" >> "$H/times"
    done
  done
  stop_service
  say "  requirements: alpha gamma (tiny, 3 distributions)"
  [[ -z $HEAVY_PROJECT ]] || say "  and heavy t01 (the first of the venvs of (5))"
  $STATS table "$H/times"
  $STATS ratio "$H/times" plugin-on-tiny plugin-off 1.05
  [[ -n $HEAVY_PROJECT ]] && $STATS ratio "$H/times" plugin-on-heavy plugin-off 1.05
fi

say ""
say "total time: $(( ($(now_us) - T_ALL) / 1000000 )) s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -n ${KEEP:-} ]] || say "removing $WORK"
