#!/usr/bin/env bash
# deps.sh: what the router VM test needs, from Debian's archive.
#  1. qemu-system-arm (and qemu-system-mips for the optional MIPS VM), installed.
#  2. The armhf architecture added to dpkg, so that apt sees armhf packages.
#  3. Debian's armmp kernel (the package the unversioned linux-image-armmp
#     depends on) and busybox-static for armhf, downloaded (not installed:
#     they are for the VM) into DIR (default: bin/router-vm).
# Needs root; without root it only says what is missing.
set -euo pipefail
dir=${1:-bin/router-vm}
mkdir -p "$dir"
have_debs() { compgen -G "$dir/linux-image-*-armmp_*_armhf.deb" >/dev/null && compgen -G "$dir/busybox-static_*_armhf.deb" >/dev/null; }
if command -v qemu-system-arm >/dev/null && have_debs; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
	# As make deps: without root, say what is missing (the router test
	# skips, or fails under CI=true).
	echo "router VM: missing (install as root): qemu-system-arm, or the armhf linux-image-*-armmp and busybox-static .debs in $dir" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx armhf; then
	dpkg --add-architecture armhf
fi
apt-get update -qq
if ! command -v qemu-system-arm >/dev/null; then
	apt-get install -y -qq --no-install-recommends qemu-system-arm >/dev/null
fi
if ! have_debs; then
	kernel=$(apt-cache depends linux-image-armmp:armhf | sed -n 's/^ *Depends: \(linux-image-[^ ]*-armmp\)\(:armhf\)\?$/\1/p' | head -1)
	[ -n "$kernel" ] || { echo "router-deps: linux-image-armmp:armhf names no kernel package" >&2; exit 1; }
	# apt-get download writes to the current directory; _apt cannot write
	# into a root-owned folder, so it downloads unsandboxed (a warning).
	(cd "$dir" && apt-get download -qq "$kernel:armhf" busybox-static:armhf 2>&1 | grep -v 'unsandboxed' || true)
fi
have_debs || { echo "router-deps: the .debs are still missing in $dir" >&2; exit 1; }
