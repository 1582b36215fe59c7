# Cross-compiles the library for aarch64 with Debian's g++-aarch64-linux-gnu (CI checks that
# the NEON build compiles and links; it cannot run it). Header-only xsimd comes from the host.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Debian installs xsimd's (architecture-independent) package config under the host's multiarch
# directory; point the cross build at it.
set(xsimd_DIR /usr/lib/x86_64-linux-gnu/cmake/xsimd CACHE PATH "xsimd package config")
