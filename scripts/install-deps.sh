#!/bin/sh
# System packages Bastion needs to build, run and test on Debian 12 (run as root).
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
packages="iptables iproute2 libnetfilter-queue-dev libmnl-dev libsqlite3-dev sqlite3 build-essential python3 curl iputils-ping ca-certificates"
# Debian 12's own nodejs (18.x) runs Bastion; install it only where no node is present.
command -v node >/dev/null 2>&1 || packages="$packages nodejs npm"
# polkit tests (a private system bus and polkitd), the Debian package (build, lint, unit
# checks with systemd-analyze) and its install test into a debootstrap root.
packages="$packages dbus-daemon polkitd debhelper dpkg-dev fakeroot lintian debootstrap systemd"
# The boot test: the package installed into a Debian 12 root booted with systemd-nspawn.
packages="$packages systemd-container"
# Tests that make users (useradd) and run the package postinst (adduser, addgroup).
packages="$packages passwd adduser"
# The addon's BPF programs (native/bpf): clang -target bpf, llvm-strip, bpftool gen skeleton,
# and libbpf to load them.
packages="$packages clang llvm libbpf-dev bpftool"
# test/kernel/debianKernel.test.ts: the BPF programs on Debian 12's own kernel (its image fetched
# with apt-get download), booted under qemu with software emulation.
packages="$packages qemu-system-x86"
# test/e2e/btrfsIdentity.test.ts makes a btrfs image (mkfs.btrfs) and a subvolume (btrfs) on it.
packages="$packages btrfs-progs"
# test/e2e/inbound.test.ts: inbound protection beside a real ufw (run only inside a test namespace) and an nftables input chain.
packages="$packages ufw nftables"
# The desktop agent's tests: the panel in a real browser (Debian's chromium, driven by
# playwright-core, which downloads no browser of its own), on a private session bus (dbus-daemon).
packages="$packages chromium"
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $packages
