#!/bin/sh
# Builds a BPF object and its libbpf skeleton: skeleton.sh SOURCE.bpf.c OUTDIR writes
# OUTDIR/NAME.bpf.o and OUTDIR/NAME.skel.h (struct NAME_bpf). Run by node-gyp (binding.gyp).
# clang -target bpf compiles with BTF (-g) for CO-RE; llvm-strip -g drops the DWARF, which the
# kernel never reads, from the object the skeleton embeds. BPF_CLANG, LLVM_STRIP and BPFTOOL
# name other tools.
set -eu
src=$1
out=$2
name=$(basename "$src" .bpf.c)
clang=${BPF_CLANG:-clang}
strip=${LLVM_STRIP:-llvm-strip}
# bpftool lives in /usr/sbin, which a package build's PATH may lack.
bpftool=${BPFTOOL:-$(command -v bpftool || echo /usr/sbin/bpftool)}
# The uapi headers' asm/ directory is per architecture (asm/types.h from linux/types.h).
multiarch=$(gcc -print-multiarch 2>/dev/null || true)
mkdir -p "$out"
# -mcpu=v3: atomic fetch-and-add (kernel 5.12+) and 32-bit jumps.
"$clang" -g -O2 -target bpf -mcpu=v3 -Wall -Werror ${multiarch:+-idirafter /usr/include/$multiarch} \
	-I"$(dirname "$src")" -c "$src" -o "$out/$name.bpf.o"
"$strip" -g "$out/$name.bpf.o"
"$bpftool" gen skeleton "$out/$name.bpf.o" name "${name}_bpf" > "$out/$name.skel.h.tmp"
mv "$out/$name.skel.h.tmp" "$out/$name.skel.h"
