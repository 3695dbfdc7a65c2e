#!/usr/bin/env bash
# Builds the Debian package, installs it on this machine, runs a compile from
# the installed files alone, and removes the package again (issue 13).
#
#   bash scripts/test-package.sh        (as root; CLSI_PACKAGE_BUILD_DIR: build-pkg)
#
# 1. packaging/build-deb.sh builds clsi-python-venv_*.deb in build-pkg/.
# 2. `apt-get install ./that.deb` (apt-get update first only if that fails).
#    Its postinst must have made the user clsi-venvs and the store.
# 3. The compile, as scripts/run-example.sh does it, but from the installed
#    paths only: a wheel index built with the installed mkindex.py from the
#    installed example packages, a configuration written from the installed
#    example template (a scratch store, a file:// index, a socket of its
#    own), the installed `clsi-venvs serve` as the package's user, and the
#    installed `clsi-runner` with the installed plugin rendering the
#    installed example project (requirements.txt) with the installed
#    stand-in renderer, as user nobody. Twice: the first compile builds the
#    venv, the second reuses it. Every installed program runs with
#    `env -i PATH=/usr/bin:/bin`, in the scratch directory, and, where the
#    machine allows a mount namespace, with this checkout and the build tree
#    hidden under an empty tmpfs, so nothing can come from them.
# 4. Stops the service, purges the package, removes the user and the group
#    if they were not there before, and checks that nothing is left.
#
# On failure the logs are printed, the package is still purged, and the
# scratch directory is kept (its path is printed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CLSI_PACKAGE_BUILD_DIR:-$root/build-pkg}
case $build in /*) ;; *) build=$root/$build ;; esac
pkg=clsi-python-venv
user=clsi-venvs
store=/var/lib/overleaf/data/python-venvs # the package's default store
t0=$SECONDS
step() { printf '== [%3ds] %s\n' $((SECONDS - t0)) "$*"; }
fail() {
  echo "test-package.sh: FAILED: $*" >&2
  exit 1
}

if [ "$(id -u)" -ne 0 ]; then
  echo "test-package.sh: needs root: it installs and removes the package $pkg" >&2
  exit 1
fi
state=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
if [ -n "$state" ] && [ "${state:0:2}" != un ]; then
  echo "test-package.sh: $pkg is already on this machine (dpkg state '$state');" \
    "the test would remove it. Purge it first: apt-get purge $pkg" >&2
  exit 1
fi
# What the package creates and the test must take away again.
had_user=0 had_group=0 had_overleaf=0
getent passwd "$user" >/dev/null && had_user=1
getent group "$user" >/dev/null && had_group=1
[ -e /var/lib/overleaf ] && had_overleaf=1

step "dependencies (scripts/install-deps.sh)"
bash "$root/scripts/install-deps.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/clsi-package.XXXXXX")
case "$tmp/" in
"$root/"* | "$build/"*)
  rmdir "$tmp"
  fail "the scratch directory $tmp is in the checkout or the build tree, which the test hides; set TMPDIR"
  ;;
esac
chmod 0755 "$tmp" # the service's user and the render's must get in
installed=0 service_pid="" ok=0
cleanup() {
  local status=$?
  set +e
  if [ -n "$service_pid" ]; then
    kill -TERM "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null
  fi
  if [ "$ok" -ne 1 ]; then
    for f in "$tmp"/compile-*/output.log "$tmp/service.log"; do
      [ -f "$f" ] && {
        echo "-- $f"
        cat "$f"
      }
    done
  fi
  if [ "$installed" -eq 1 ]; then
    echo "== purging $pkg after the failure"
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "$pkg" >/dev/null
  fi
  if [ "$had_user" -eq 0 ] && getent passwd "$user" >/dev/null; then userdel "$user"; fi
  if [ "$had_group" -eq 0 ] && getent group "$user" >/dev/null; then groupdel "$user"; fi
  if [ "$ok" -eq 1 ]; then
    rm -rf "$tmp"
  else
    echo "test-package.sh: scratch directory kept: $tmp" >&2
  fi
  exit "$status"
}
trap cleanup EXIT

step "build the package (packaging/build-deb.sh $build)"
if ! bash "$root/packaging/build-deb.sh" "$build" >"$tmp/build.log" 2>&1; then
  tail -n 40 "$tmp/build.log" >&2
  fail "the package did not build (the whole log: $tmp/build.log)"
fi
deb=$(ls "$build/${pkg}"_*.deb)
echo "$deb"
dpkg-deb --field "$deb" Package Version Architecture Depends Suggests
echo "$(dpkg-deb --contents "$deb" | wc -l) entries; conffiles: $(dpkg-deb --ctrl-tarfile "$deb" |
  tar -xOf - ./conffiles | tr '\n' ' ')"
if command -v lintian >/dev/null 2>&1; then
  step "lintian (errors fail the test)"
  lintian --fail-on error "$deb"
fi

step "install: apt-get install $deb"
export DEBIAN_FRONTEND=noninteractive
installed=1
if ! apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "$deb"; then
  echo "apt-get install failed; updating the package lists and trying again"
  apt-get update -q
  apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "$deb"
fi
dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' "$pkg"

# The installed paths, from the package's own file list.
dpkg -L "$pkg" >"$tmp/files"
path_of() {
  grep -E "$1" "$tmp/files" | head -n 1 | grep . || fail "the package has no file matching $1"
}
venvs_bin=$(path_of '/bin/clsi-venvs$')
runner_bin=$(path_of '/bin/clsi-runner$')
plugin=$(path_of '/clsi/plugins/clsi_python_venv\.so$')
examples=$(dirname "$(dirname "$(path_of '/examples/tools/quarto-standin$')")")
unit=$(path_of '/systemd/system/clsi-venvs\.service$')
config=$(path_of '^/etc/clsi/plugin\.yaml$')
printf '%s\n' "$venvs_bin" "$runner_bin" "$plugin" "$examples" "$unit" "$config"

step "the installed files: no path of the checkout or the build tree in them"
while read -r f; do
  if [ -f "$f" ] && grep -qaF -e "$root" -e "$build" "$f"; then
    fail "$f names the checkout ($root) or the build tree ($build)"
  fi
done <"$tmp/files"
grep -qxF "ExecStart=$venvs_bin serve --json --config $config" "$unit" ||
  fail "$unit does not start $venvs_bin with $config: $(grep ExecStart= "$unit")"
if command -v systemd-analyze >/dev/null 2>&1; then
  systemd-analyze verify "$unit"
fi
echo "ok"

step "postinst: the user $user and the store $store"
getent passwd "$user" || fail "no user $user"
[ "$(stat -c '%U:%G %a' "$store")" = "$user:$user 755" ] ||
  fail "$store is $(stat -c '%U:%G %a' "$store"), not $user:$user 755"
ls -ld /var/lib/overleaf /var/lib/overleaf/data "$store"

# Every installed program below runs through run_installed: a clean
# environment, the scratch directory as its working directory, and the
# checkout and the build tree hidden when a mount namespace is allowed.
hide=()
if unshare --mount --propagation private -- true 2>/dev/null; then
  # shellcheck disable=SC2016 # expanded by that sh
  hide=(unshare --mount --propagation private -- /bin/sh -c '
    for d in "$0" "$1"; do
      if [ -d "$d" ]; then mount -t tmpfs -o mode=0755,size=64k clsi-hidden "$d" || exit 125; fi
    done
    shift # $0 is the checkout, $1 the build tree, the rest the command
    exec "$@"' "$root" "$build")
  echo "(the checkout and the build tree are hidden from the installed programs under an empty tmpfs)"
else
  echo "(no mount namespace here: the checkout stays visible; PATH and the working directory keep it out)"
fi
run_installed() {
  (cd "$tmp" && exec "${hide[@]}" env -i PATH=/usr/bin:/bin LANG=C.UTF-8 HOME=/root "$@")
}
run_installed /bin/sh -c "! test -e '$root/CMakeLists.txt' || test ${#hide[@]} -eq 0" ||
  fail "the checkout is still visible inside the mount namespace"

step "the index: the installed mkindex.py over the installed example packages"
sources=()
for p in "$examples"/packages/*/pyproject.toml; do sources+=(--source "$(dirname "$p")"); done
run_installed python3 "$examples/tools/mkindex.py" "$tmp/index" "${sources[@]}"

step "the configuration: $tmp/plugin.yaml from the installed $examples/plugin.yaml"
# The substitutions scripts/run-example.sh makes (its template, installed).
run_installed python3 - "$examples/plugin.yaml" "$tmp/plugin.yaml" "$tmp" <<'EOF'
import sys, urllib.parse
template, target, out = sys.argv[1:]
text = open(template).read()
text = text.replace("@EXAMPLE_OUT_URL@", urllib.parse.quote(out)).replace("@EXAMPLE_OUT@", out)
text = text.replace("@HOST_UID@", "0")  # clsi-runner runs as root (--run-as)
open(target, "w").write(text)
EOF
grep -E '^\s*(enabled|venvs_dir|index_url|socket|allowed_uids):' "$tmp/plugin.yaml"
mkdir -m 0755 "$tmp/venvs" "$tmp/run"
chown "$user:$user" "$tmp/venvs" "$tmp/run"

step "the build service: clsi-venvs serve as $user"
# run_installed's steps, without its function: the subshell execs all the way
# to clsi-venvs, so that $! is the service itself.
(cd "$tmp" && exec "${hide[@]}" env -i PATH=/usr/bin:/bin LANG=C.UTF-8 HOME=/root \
  setpriv --reuid="$user" --regid="$user" --init-groups -- \
  clsi-venvs serve --config "$tmp/plugin.yaml") 2>"$tmp/service.log" &
service_pid=$!
for _ in $(seq 100); do
  [ -S "$tmp/run/clsi-venvs.sock" ] && break
  kill -0 "$service_pid" 2>/dev/null || fail "the service exited: $(cat "$tmp/service.log")"
  sleep 0.1
done
[ -S "$tmp/run/clsi-venvs.sock" ] || fail "no socket after 10 s"
[ "$(readlink "/proc/$service_pid/exe")" = "$venvs_bin" ] ||
  fail "process $service_pid is $(readlink "/proc/$service_pid/exe"), not $venvs_bin"
ls -l "$tmp/run/clsi-venvs.sock"

# compile N: the installed example project in $tmp/compile-N, rendered by
# the installed stand-in through the installed runner and plugin.
compile() {
  local dir=$tmp/compile-$1 status=0
  cp -r "$examples/project" "$dir"
  chown -R nobody: "$dir"
  step "compile $1: clsi-runner --plugin $plugin ... --run-as nobody -- quarto-standin render report.qmd"
  run_installed clsi-runner --plugin "$plugin" --plugin-config "$tmp/plugin.yaml" \
    --compile-dir "$dir" --project-id package-test --user-id owner --allow-python-install \
    --timeout 300 --run-as nobody -- "$examples/tools/quarto-standin" render report.qmd ||
    status=$?
  echo "-- $dir/output.log (clsi-runner exit status $status)"
  cat "$dir/output.log"
  [ "$status" -eq 0 ] || fail "compile $1 exited with status $status"
}
expect() { # expect N PATTERN WHAT: output.log of compile N has a line with PATTERN
  grep -qF -- "$2" "$tmp/compile-$1/output.log" || fail "compile $1: $3 (no line with '$2')"
}
compile 1
expect 1 '[python-venv] building environment' "the venv was not built"
expect 1 '[python-venv] built environment' "the venv was not built"
expect 1 'environment: QUARTO_PYTHON set by python-venv' "QUARTO_PYTHON was not set"
expect 1 "using interpreter $tmp/venvs/" "the kernel driver did not run in the venv"
expect 1 "kernel sys.executable: $tmp/venvs/" "the Jupyter kernel did not run in the venv"
[ -s "$tmp/compile-1/report.md" ] || fail "compile 1 wrote no report.md"
compile 2
expect 2 '[python-venv] reusing environment' "the venv built by compile 1 was not reused"
expect 2 "kernel sys.executable: $tmp/venvs/" "the Jupyter kernel did not run in the venv"

step "the store, as the service's user: clsi-venvs list"
run_installed setpriv --reuid="$user" --regid="$user" --init-groups -- \
  clsi-venvs list --config "$tmp/plugin.yaml"

step "stop the service"
kill -TERM "$service_pid"
wait "$service_pid" || fail "the service exited with status $? on SIGTERM"
service_pid=""
sed 's/^/  /' "$tmp/service.log"

step "remove: apt-get purge $pkg"
apt-get purge -y -q -o Dpkg::Use-Pty=0 "$pkg"
installed=0
state=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
[ -z "$state" ] || [ "${state:0:2}" = un ] || fail "$pkg is still known to dpkg: '$state'"
while read -r f; do
  if [ -f "$f" ] || [ -L "$f" ]; then fail "$f is still there after the purge"; fi
done <"$tmp/files"
[ ! -e "$store" ] || fail "the purge left $store"
if [ "$had_overleaf" -eq 0 ] && [ -e /var/lib/overleaf ]; then
  fail "the purge left /var/lib/overleaf"
fi
if [ "$had_user" -eq 0 ]; then userdel "$user"; fi # Debian leaves system users behind
if [ "$had_group" -eq 0 ] && getent group "$user" >/dev/null; then groupdel "$user"; fi
echo "ok: no file of the package, its store or (unless it was there before) its user is left"

ok=1
step "OK: built, installed, compiled twice from the installed paths (built, then reused), removed"
