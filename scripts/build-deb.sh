#!/bin/sh
# Builds the Debian package with `dpkg-buildpackage -us -uc -b` in a copy of the working tree
# (tracked and new files, not ignored ones), so the tree's own node_modules, dist/ and
# native/build are never touched by debian/rules' clean. The tree's node_modules is copied in
# when present, so the build needs no network; otherwise debian/rules runs `npm ci`.
# Usage: scripts/build-deb.sh [OUT_DIR]   (default: $TMPDIR/bastion-deb); prints the .deb's path.
set -eu
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-${TMPDIR:-/tmp}/bastion-deb}")
version=$(dpkg-parsechangelog -S Version)
pkg_version=$(node -p 'require("./package.json").version')
if [ "$version" != "$pkg_version" ]; then
    echo "debian/changelog is at $version but package.json at $pkg_version: add a changelog entry" >&2
    exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/bastion-deb-build.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
src="$work/bastion-firewall-$version"
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp -P --parents -t "$src" 2>/dev/null || true
# (cp fails only on files listed by git but deleted in the tree; those are simply not shipped.)
if [ -d node_modules ]; then cp -a node_modules "$src/"; fi
(cd "$src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 || {
    tail -n 60 "$work/build.log" >&2
    echo "dpkg-buildpackage failed (log above)" >&2
    exit 1
}
mkdir -p "$out"
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb="bastion-firewall_${version}_${arch}.deb"
mv "$work/$deb" "$work"/bastion-firewall_"$version"_"$arch".buildinfo "$work"/bastion-firewall_"$version"_"$arch".changes "$out/"
cp "$work/build.log" "$out/build.log"
echo "$out/$deb"
