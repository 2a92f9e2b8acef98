#!/bin/sh
# The addon built with AddressSanitizer (every source in native/src: the kernel families, the
# queue reader and the bindings), run through the tests of test/native.
# Node itself is not instrumented, so the ASan runtime is preloaded; leak checking is off
# because node's own allocations at exit would drown ours.
set -eu
cd "$(dirname "$0")/.."
build=$(mktemp -d /tmp/bastion-asan.XXXXXX)
trap 'rm -rf "$build"' EXIT
cp -r native/binding.gyp native/src native/bpf "$build/"
BASTION_ASAN=1 npx node-gyp rebuild --directory "$build" >/dev/null
export BASTION_NATIVE_ADDON="$build/build/Release/bastion_native.node"
nm -u "$BASTION_NATIVE_ADDON" | grep -q __asan_init || { echo "the addon was not built with ASan"; exit 1; }
export LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
node --import tsx --test --test-reporter=spec test/native/*.test.ts
