#!/usr/bin/env bash
# Installs websockets into a temporary prefix, checks the installed file names, then
# builds tests/consumers/project against websockets-cpp.pc: once with a bare compiler
# command, once as a meson project; runs both.
# Usage: installed.sh SOURCE_ROOT; environment: CXX, MESON, PKG_CONFIG.
set -euo pipefail
src=$(cd "${1:?usage: installed.sh SOURCE_ROOT}" && pwd)
meson=${MESON:-meson} cxx=${CXX:-c++} pkg_config=${PKG_CONFIG:-pkg-config}
work=$(mktemp -d "${TMPDIR:-/tmp}/websockets-installed.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
fail() { echo "FAILED: $*" >&2; exit 1; }

# plain: no optimization nor debug info, the quickest build; the point is what installs.
$meson setup "$work/build" "$src" --prefix="$prefix" --buildtype=plain -Dtests=false -Dsamples=false
$meson install -C "$work/build" --quiet

echo "Installed:"; (cd "$prefix" && find . ! -type d | sort)
# The library and its .pc are websockets-cpp; nothing may take libwebsockets' names.
shopt -s nullglob globstar
libs=("$prefix"/lib*/**/libwebsockets-cpp.so*)
pcs=("$prefix"/lib*/**/pkgconfig/websockets-cpp.pc)
clashes=("$prefix"/**/libwebsockets.so* "$prefix"/**/libwebsockets.a "$prefix"/**/libwebsockets.pc)
((${#libs[@]} > 0)) || fail "no lib*/libwebsockets-cpp.so* installed"
((${#pcs[@]} == 1)) || fail "expected one lib*/pkgconfig/websockets-cpp.pc"
((${#clashes[@]} == 0)) || fail "installed under libwebsockets' names: ${clashes[*]}"
for header in "$src"/include/websockets/*.hpp; do
  [[ -f $prefix/include/websockets/${header##*/} ]] || fail "include/websockets/${header##*/} not installed"
done

export PKG_CONFIG_PATH=${pcs[0]%/*}${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
echo "websockets-cpp.pc:"; cat "${pcs[0]}"
libdir=$($pkg_config --variable=libdir websockets-cpp)
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# A bare compiler command, as a build system without meson would do it.
# shellcheck disable=SC2046 # pkg-config's output is meant to be split into words
$cxx -std=c++20 -o "$work/consumer-plain" "$src/tests/consumers/project/main.cpp" \
  $($pkg_config --cflags --libs websockets-cpp)
"$work/consumer-plain"

# A meson project: no subprojects/ and no fallback, so only pkg-config can find it.
cp -R "$src/tests/consumers/project" "$work/consumer"
$meson setup "$work/consumer-build" "$work/consumer" --wrap-mode=nofallback
$meson compile -C "$work/consumer-build"
"$work/consumer-build/consumer"
