#!/bin/sh
# The test command (README, .ci/run): build the addon, then every test file through tsx with
# node's own test runner. Privileged tests need root (network namespaces, iptables, NFQUEUE).
set -eu
cd "$(dirname "$0")/.."
npm run --silent build:native >/dev/null
files=$(find test -name '*.test.ts' | sort)
# A bound per test (the package build is the longest, minutes): a hang fails instead of stalling CI.
exec node --import tsx --test --test-reporter=spec --test-timeout=900000 $files
