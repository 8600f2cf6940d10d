#!/bin/sh
# ctest install.consumer: installs ward from BUILD into a temporary prefix, moves the prefix (so
# nothing may remember where it was installed), builds examples/consumer against it with CMake
# (libward.so, then libward.a) and with its Makefile (pkg-config), and runs each; then moves the
# prefix once more and runs the already-built consumer again (libward.so now found through
# LD_LIBRARY_PATH, the helper relative to it). The temporary directory goes, also on failure.
#   test_consumer.sh BUILD CONSUMER_SOURCE
set -eu
build=$1
src=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ward-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
# Nothing from the build tree or the caller's environment may help the installed ward.
unset WARD_HELPER_DIR WARD_PLUGIN_DIR LD_LIBRARY_PATH PKG_CONFIG_PATH CMAKE_PREFIX_PATH

step() { printf '== %s\n' "$*"; }

step "install into $tmp/first, move to $tmp/prefix"
cmake --install "$build" --prefix "$tmp/first" >/dev/null
mv "$tmp/first" "$tmp/prefix"
prefix=$tmp/prefix
for f in include/ward/ward.h lib/libward.a lib/libward.so lib/cmake/ward/wardConfig.cmake \
         lib/cmake/ward/wardConfigVersion.cmake lib/pkgconfig/ward.pc libexec/ward/ward-helper \
         libexec/ward/libward-audit.so bin/ward share/doc/ward/README.md; do
  [ -e "$prefix/$f" ] || { echo "not installed: $f"; exit 1; }
done
soname=$(readelf -d "$prefix/lib/libward.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ -n "$soname" ] && [ -e "$prefix/lib/$soname" ] || { echo "libward.so has no SONAME or no $soname"; exit 1; }

# Runs a built consumer and checks that it crossed into its plugin and recovered from its crash.
run() {
  out=$("$@" 2>&1) || { printf '%s\n' "$out"; echo "consumer failed: $*"; exit 1; }
  printf '%s\n' "$out"
  printf '%s\n' "$out" | grep -q 'counter_bump(5) after 1 restart(s) = 5' || { echo "no recovery seen"; exit 1; }
}

step "CMake, find_package(ward CONFIG), libward.so"
cmake -S "$src" -B "$tmp/cmake-shared" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/cmake-shared" >/dev/null
ldd "$tmp/cmake-shared/consumer" | grep -q "$prefix/lib/$soname" || { ldd "$tmp/cmake-shared/consumer"; echo "not linked to the installed libward.so"; exit 1; }
run "$tmp/cmake-shared/consumer"

step "CMake, ward_USE_STATIC_LIBS=ON, libward.a (helper through WARD_HELPER_DIR: a static libward outside the prefix cannot locate it)"
cmake -S "$src" -B "$tmp/cmake-static" -DCMAKE_PREFIX_PATH="$prefix" -Dward_USE_STATIC_LIBS=ON >/dev/null
cmake --build "$tmp/cmake-static" >/dev/null
if ldd "$tmp/cmake-static/consumer" | grep -q libward; then echo "static consumer links libward.so"; exit 1; fi
WARD_HELPER_DIR=$prefix/libexec/ward run "$tmp/cmake-static/consumer"

step "Makefile, pkg-config --cflags --libs ward"
[ "$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --modversion ward)" = "$(sed -n 's/^project(ward VERSION \([0-9.]*\).*/\1/p' "$src/../../CMakeLists.txt")" ] ||
  { echo "ward.pc's version is not the project's"; exit 1; }
make -s -C "$src" O="$tmp/make" PKG_CONFIG_PATH="$prefix/lib/pkgconfig" >/dev/null
run "$tmp/make/consumer"

step "move the prefix again; run the built consumer from there"
mv "$prefix" "$tmp/moved"
LD_LIBRARY_PATH=$tmp/moved/lib run "$tmp/cmake-shared/consumer"
step "ok"
