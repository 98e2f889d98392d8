#!/usr/bin/env bash
# Builds tests/consumers/project with websockets as a meson subproject
# (subprojects/websockets -> the source tree) and runs it.
# Usage: subproject.sh SOURCE_ROOT; environment: CXX, MESON.
set -euo pipefail
src=$(cd "${1:?usage: subproject.sh SOURCE_ROOT}" && pwd)
meson=${MESON:-meson}
work=$(mktemp -d "${TMPDIR:-/tmp}/websockets-subproject.XXXXXX")
trap 'rm -rf "$work"' EXIT

cp -R "$src/tests/consumers/project" "$work/consumer"
mkdir "$work/consumer/subprojects"
ln -s "$src" "$work/consumer/subprojects/websockets"

# Forced, so that a websockets-cpp.pc installed on this machine cannot stand in for it.
# plain: no optimization nor debug info, the quickest build; the point is that it links.
$meson setup "$work/build" "$work/consumer" --buildtype=plain --force-fallback-for=websockets-cpp
$meson compile -C "$work/build"
"$work/build/consumer"
