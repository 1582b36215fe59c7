# Cross-compiles for aarch64 with Debian's g++-aarch64-linux-gnu. Tests run under qemu-user
# (CMAKE_CROSSCOMPILING_EMULATOR: ctest prefixes every test command with it), with Debian's
# arm64 cross libraries as the sysroot. Header-only xsimd comes from the host.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/usr/aarch64-linux-gnu)
# Debian installs xsimd's (architecture-independent) package config under the host's multiarch
# directory; point the cross build at it.
set(xsimd_DIR /usr/lib/x86_64-linux-gnu/cmake/xsimd CACHE PATH "xsimd package config")
# GoogleTest is built from Debian's sources (package googletest) for the target: the host's
# libgtest is x86-64 (tests/CMakeLists.txt).
set(PAGEDINFER_GTEST_SOURCE_DIR /usr/src/googletest CACHE PATH "GoogleTest sources for the cross build")
