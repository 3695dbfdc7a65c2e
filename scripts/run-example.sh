#!/usr/bin/env bash
# Renders examples/project through clsi-runner with the python-venv plugin on,
# twice: the first compile builds the project's venv from a local package index
# (built here from examples/packages/), the second reuses it.
#
# The parts run as they do in production: the build service (clsi-venvs serve)
# owns the store and builds, the compile host (clsi-runner, with the plugin)
# only reads it, the render runs as another user. Run as root, the script
# creates two system users for that, clsi-example-venvs and clsi-example-render
# (userdel removes them); run as anyone else, all three parts run as you.
#
# Installs what is missing (scripts/install-deps.sh) and brings build/ up to
# date first. Everything it writes is under
# examples/out/ (git-ignored), and it starts from scratch every time.
# Uses `quarto` when it is on PATH, else examples/tools/quarto-standin.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=$root/examples/out
runner=$root/build/bin/clsi-runner
plugin=$root/build/lib/clsi_python_venv.so

# The example decides its own configuration: overrides from the caller's
# environment would send it to another store or switch it off.
unset PYTHON_VENVS_DIR OVERLEAF_ENABLE_PROJECT_PYTHON_VENV QUARTO_PYTHON

echo "== dependencies"
bash scripts/install-deps.sh

echo "== build (build/)"
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"

echo "== clean: examples/out/compile-*, venvs, index, run, plugin.yaml"
rm -rf "$out"/compile-* "$out/venvs" "$out/index" "$out/run" "$out/plugin.yaml" "$out/service.log"
mkdir -p "$out" "$out/venvs" "$out/run"

# Who runs what. As root: a user of its own for the service (it owns the
# store) and one for renders (it can write nothing of the store's).
service_as=() render_as=()
service_user=$(id -un) render_user=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
  for u in clsi-example-venvs clsi-example-render; do
    id -u "$u" >/dev/null 2>&1 ||
      useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$u"
  done
  service_user=clsi-example-venvs render_user=clsi-example-render
  service_as=(setpriv --reuid="$service_user" --regid="$service_user" --init-groups --)
  render_as=(--run-as "$render_user")
  # Both must reach the store, the index and the project through every parent.
  d=$out
  while [ "$d" != / ]; do
    if [ $(( 0$(stat -c %a "$d") & 1 )) -eq 0 ]; then
      echo "run-example.sh: $d is not searchable by other users; clone the repository" \
        "somewhere they can reach (e.g. under /srv or /opt)" >&2
      exit 1
    fi
    d=$(dirname "$d")
  done
  chown "$service_user:$service_user" "$out/venvs" "$out/run"
fi

echo "== local package index: examples/out/index (from examples/packages/)"
sources=()
for p in "$root"/examples/packages/*/pyproject.toml; do sources+=(--source "$(dirname "$p")"); done
python3 examples/tools/mkindex.py "$out/index" "${sources[@]}" | sed "s|^$root/||"

echo "== plugin configuration: examples/out/plugin.yaml (from examples/plugin.yaml)"
python3 - "$root/examples/plugin.yaml" "$out/plugin.yaml" "$out" <<'EOF'
import os, sys, urllib.parse
template, target, out = sys.argv[1:]
if '"' in out or "\\" in out:
    sys.exit("run-example.sh: the path %s cannot go into a YAML string as it is" % out)
text = open(template).read()
text = text.replace("@EXAMPLE_OUT_URL@", urllib.parse.quote(out)).replace("@EXAMPLE_OUT@", out)
text = text.replace("@HOST_UID@", str(os.getuid()))
open(target, "w").write(text)
EOF
grep -E '^\s*(enabled|venvs_dir|index_url|socket):' "$out/plugin.yaml"

echo "== build service: clsi-venvs serve, as $service_user (it alone writes examples/out/venvs)"
"${service_as[@]}" "$root/build/bin/clsi-venvs" serve --config "$out/plugin.yaml" \
  2>"$out/service.log" &
service_pid=$!
stop_service() {
  kill -TERM "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null || true
  echo "== build service stopped; its log (examples/out/service.log):"
  sed 's/^/  /' "$out/service.log"
}
trap stop_service EXIT
for _ in $(seq 100); do
  [ -S "$out/run/clsi-venvs.sock" ] && break
  kill -0 "$service_pid" 2>/dev/null || { cat "$out/service.log" >&2; exit 1; }
  sleep 0.1
done

if command -v quarto >/dev/null 2>&1; then
  render=(quarto render report.qmd)
  echo "== renderer: $(command -v quarto)"
else
  render=("$root/examples/tools/quarto-standin" render report.qmd)
  echo "== renderer: quarto is not on PATH; using the stand-in examples/tools/quarto-standin"
fi

# compile N: a fresh copy of the project in examples/out/compile-N, rendered
# through clsi-runner; prints its output.log; returns the runner's status.
compile() {
  local dir=$out/compile-$1 status=0
  cp -r "$root/examples/project" "$dir"
  echo
  [ "$(id -u)" -ne 0 ] || chown -R "$render_user:$render_user" "$dir"
  echo "== compile $1: examples/out/compile-$1 (clsi-runner and the plugin as $(id -un)," \
    "the render as $render_user)"
  "$runner" --plugin "$plugin" --plugin-config "$out/plugin.yaml" --compile-dir "$dir" \
    --project-id example --user-id owner --allow-python-install --timeout 300 \
    "${render_as[@]}" -- "${render[@]}" || status=$?
  echo "-- examples/out/compile-$1/output.log (clsi-runner exit status $status)"
  cat "$dir/output.log" 2>/dev/null || echo "(no output.log)"
  return "$status"
}

status1=0 status2=0
compile 1 || status1=$?
if [ -f "$out/compile-1/report.md" ]; then
  echo "-- examples/out/compile-1/report.md (rendered by the stand-in)"
  cat "$out/compile-1/report.md"
fi
compile 2 || status2=$?

echo
echo "== summary"
for n in 1 2; do
  echo "compile $n:"
  grep -F '[python-venv]' "$out/compile-$n/output.log" | sed 's/^/  /' || echo "  (no [python-venv] lines)"
done
ok=1
[ "$status1" -eq 0 ] || { echo "FAILED: compile 1 exited with status $status1"; ok=0; }
[ "$status2" -eq 0 ] || { echo "FAILED: compile 2 exited with status $status2"; ok=0; }
if ! grep -qE '^\[python-venv\] .*reusing' "$out/compile-2/output.log"; then
  echo "FAILED: compile 2 did not reuse the environment built by compile 1"
  ok=0
fi
if ! grep -qiE '^\[python-venv\] .*(building|built)' "$out/compile-1/output.log"; then
  echo "FAILED: compile 1 did not build an environment"
  ok=0
fi
for n in 1 2; do
  if ! grep -qF 'environment: QUARTO_PYTHON set by python-venv' "$out/compile-$n/output.log"; then
    echo "FAILED: compile $n ran without QUARTO_PYTHON from the plugin"
    ok=0
  elif [ "${render[0]}" != quarto ] &&
    ! grep -qF "using interpreter $out/venvs/" "$out/compile-$n/output.log"; then
    echo "FAILED: the stand-in in compile $n did not run an interpreter under examples/out/venvs"
    ok=0
  elif [ "${render[0]}" != quarto ] &&
    ! grep -qF "kernel sys.executable: $out/venvs/" "$out/compile-$n/output.log"; then
    # QUARTO_PYTHON only runs the kernel driver; the cells run in the kernelspec's argv[0].
    echo "FAILED: the Jupyter kernel in compile $n did not run under examples/out/venvs (see its 'kernelspec:' line)"
    ok=0
  fi
done
if [ "$ok" -eq 1 ]; then
  echo "OK: compile 1 built the environment, compile 2 reused it; both renders succeeded."
  exit 0
fi
exit 1
