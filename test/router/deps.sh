#!/usr/bin/env bash
# deps.sh: what the router VM test needs, from Debian's archive.
#  1. qemu-system-arm, installed.
#  2. The armhf architecture added to dpkg, so that apt sees armhf packages.
#  3. Debian's armmp kernel (the package the unversioned linux-image-armmp
#     depends on) and busybox-static for armhf, downloaded (not installed:
#     they are for the VM) into DIR (default: bin/router-vm).
# Needs root; without root it only says what is missing.
#
#	deps.sh [DIR [mipsle]]   mipsle: the same for the MIPS VM (malta,
#	                         4kc-malta kernel, mipsel packages; optional)
set -euo pipefail
dir=${1:-bin/router-vm}
arch=${2:-arm}
case $arch in
arm) dpkgarch=armhf kflavour=armmp qemu=qemu-system-arm qemupkg=qemu-system-arm ;;
mipsle) dpkgarch=mipsel kflavour=4kc-malta qemu=qemu-system-mipsel qemupkg=qemu-system-mips ;;
*) echo "router-deps: unknown architecture $arch (arm or mipsle)" >&2; exit 1 ;;
esac
mkdir -p "$dir"
have_debs() { compgen -G "$dir/linux-image-*-${kflavour}_*_$dpkgarch.deb" >/dev/null && compgen -G "$dir/busybox-static_*_$dpkgarch.deb" >/dev/null; }
if command -v $qemu >/dev/null && have_debs; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
	# As make deps: without root, say what is missing (the router test
	# skips, or fails under CI=true).
	echo "router VM: missing (install as root): $qemupkg, or the $dpkgarch linux-image-*-$kflavour and busybox-static .debs in $dir" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx $dpkgarch; then
	dpkg --add-architecture $dpkgarch
fi
apt-get update -qq
if ! command -v $qemu >/dev/null; then
	apt-get install -y -qq --no-install-recommends $qemupkg >/dev/null
fi
if ! have_debs; then
	kernel=$(apt-cache depends linux-image-$kflavour:$dpkgarch | sed -n "s/^ *Depends: \(linux-image-[^ ]*-$kflavour\)\(:$dpkgarch\)\?\$/\1/p" | head -1)
	[ -n "$kernel" ] || { echo "router-deps: linux-image-$kflavour:$dpkgarch names no kernel package" >&2; exit 1; }
	# apt-get download writes to the current directory; _apt cannot write
	# into a root-owned folder, so it downloads unsandboxed (a warning).
	(cd "$dir" && apt-get download -qq "$kernel:$dpkgarch" busybox-static:$dpkgarch 2>&1 | grep -v 'unsandboxed' || true)
fi
have_debs || { echo "router-deps: the .debs are still missing in $dir" >&2; exit 1; }
