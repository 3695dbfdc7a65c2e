#!/usr/bin/env bash
# Installs what building and testing need, from Debian's packages, if missing.
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libssl-dev libyaml-cpp-dev catch2 nlohmann-json3-dev libcli11-dev libzip-dev
  python3 python3-venv python3-pip
  python3-ipykernel python3-nbclient python3-nbformat python3-jupyter-client python3-jupyter-core
  python3-prometheus-client  # tests read the service's metrics with Prometheus' own parser
  clang-format clang-tidy
  util-linux passwd
  dpkg-dev file  # the .deb: cpack's dpkg-shlibdeps needs both (packaging/build-deb.sh)
)
# Node and npm for the addon in host-node/ (any Node >= 18 will do: one
# installed otherwise, e.g. from NodeSource, is used as it is).
if ! command -v node >/dev/null 2>&1; then packages+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then packages+=(npm); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
