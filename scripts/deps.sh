#!/usr/bin/env bash
# Installs what pagedinfer builds with, from Debian 12 packages (run as root, or with sudo).
# ocl-icd-opencl-dev: Debian's oneDNN CMake config (GPU runtime OCL) requires OpenCL to be found.
# The Python module builds for Debian's python3 (/usr/bin/python3), whose numpy, torch and pytest
# these packages install. Open MPI: the tensor-parallel and disaggregated examples and tests.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  g++ cmake ninja-build pkg-config \
  libxsimd-dev libcpu-features-dev libbenchmark-dev libgtest-dev \
  libeigen3-dev libdnnl-dev ocl-icd-opencl-dev nlohmann-json3-dev python3-matplotlib \
  python3-dev pybind11-dev libdlpack-dev python3-numpy python3-torch python3-pytest \
  libopenmpi-dev openmpi-bin >/dev/null
