#!/bin/bash
# qemu-retry.sh EMULATOR TESTBINARY ARGS...: the -exec of `go test` for the
# 386 unit tests (make test-cross). Go's runtime under qemu-i386 (qemu-user
# 7.2) dies now and then inside the runtime itself, even with
# GODEBUG=asyncpreemptoff=1: CI saw "fatal error: schedule: holding locks"
# at a test binary's start, before any test ran. Such a run, and only such
# a run (exit status 2 and one of the runtime faults below in its output),
# is run again, at most twice, and each retry is said on stderr; a failing
# test (exit 1), a panic or any other fatal error (e.g. "concurrent map
# writes") is passed on as it is.
set -u
emu=$1
shift
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for try in 1 2 3; do
	"$emu" "$@" >"$out" 2>&1
	rc=$?
	if [ "$rc" -ne 2 ] || [ "$try" -eq 3 ] ||
		! grep -qE '^fatal error: (schedule: holding locks|bad g in signal handler|morestack on g0)$' "$out"; then
		cat "$out"
		exit "$rc"
	fi
	echo "qemu-retry: $(basename "$1"): Go's runtime died under $(basename "$emu") ($(grep -m1 '^fatal error: ' "$out")); run $((try + 1)) of 3" >&2
done
