#!/usr/bin/env bash
# release.sh: cross-compile static tcpcrypt-gw binaries for the routers it
# targets, into dist/, with a SHA256SUMS file.
#
# The flow:
#  1. Work from the repository root; VERSION comes from the environment or
#     from `git describe` (falling back to "dev").
#  2. Remove binaries of earlier runs from dist/ (only our own file names).
#  3. Build each target with CGO_ENABLED=0 (a static binary needs no libc on
#     the router: glibc on Debian, musl on OpenWrt), -trimpath (no build
#     paths in the binary) and -s -w (no symbol tables: routers have little
#     flash); the version goes in through -X main.version; -tags noprofile
#     leaves out the CPU-profile hook (runtime/pprof, 0.2 MB) that only
#     measurements use.
#  4. Check each result is an ELF file of the right architecture and was
#     built without cgo, then write SHA256SUMS and print what was built.
# Any failure stops the script with a non-zero exit status.
#
# Usage: scripts/release.sh            (all targets)
#        VERSION=1.2.3 scripts/release.sh
#        TARGETS="linux/arm64 linux/mipsle" scripts/release.sh

set -euo pipefail

cd "$(dirname "$0")/.."

GO=${GO:-go}
PKG=./cmd/tcpcrypt-gw
DIST=${DIST:-dist}
NAME=tcpcrypt-gw

# os/arch[/variant]: the variant is GOARM for arm and GOMIPS for mips*.
#   linux/amd64            x86-64 boxes (GOAMD64=v1: runs on any x86-64)
#   linux/arm64            aarch64: MT7981/MT7986 (filogic), IPQ807x, Raspberry Pi 3/4/5
#   linux/arm/7            ARMv7 with VFPv3: IPQ40xx, Armada 38x (mvebu), Raspberry Pi 2
#   linux/mips/softfloat   big-endian MIPS 24Kc/74Kc: Atheros/QCA (ath79)
#   linux/mipsle/softfloat little-endian MIPS 1004Kc/24Kc: MT7621, MT7628 (ramips)
# Router MIPS cores have no FPU; softfloat avoids the kernel's FPU emulator.
DEFAULT_TARGETS="linux/amd64 linux/arm64 linux/arm/7 linux/mips/softfloat linux/mipsle/softfloat"
TARGETS=${TARGETS:-$DEFAULT_TARGETS}

if [ -z "${VERSION:-}" ]; then
	VERSION=$(git describe --tags --always --dirty 2>/dev/null || true)
	VERSION=${VERSION:-dev}
fi
case "$VERSION" in
*[!A-Za-z0-9._+-]*)
	echo "release.sh: VERSION \"$VERSION\" may only hold letters, digits and . _ + -" >&2
	exit 1
	;;
esac

command -v "$GO" >/dev/null || { echo "release.sh: $GO not found" >&2; exit 1; }
if command -v sha256sum >/dev/null; then
	SHA256="sha256sum"
elif command -v shasum >/dev/null; then
	SHA256="shasum -a 256"
else
	echo "release.sh: neither sha256sum nor shasum found" >&2
	exit 1
fi

mkdir -p "$DIST"
rm -f "$DIST/$NAME"-linux-* "$DIST/SHA256SUMS"

# elf_machine prints the e_machine field of an ELF file as a number; 0 when
# the file is not ELF. Bytes 0-3 are the magic, byte 5 the byte order, and
# e_machine is the 16-bit field at offset 18.
elf_machine() {
	local magic order lo hi
	magic=$(od -An -tx1 -N4 "$1" | tr -d ' \n')
	if [ "$magic" != "7f454c46" ]; then
		echo 0
		return
	fi
	order=$(od -An -tu1 -j5 -N1 "$1" | tr -d ' \n')
	lo=$(od -An -tu1 -j18 -N1 "$1" | tr -d ' \n')
	hi=$(od -An -tu1 -j19 -N1 "$1" | tr -d ' \n')
	if [ "$order" = 2 ]; then # big-endian
		echo $((lo * 256 + hi))
	else
		echo $((hi * 256 + lo))
	fi
}

# want_machine: ELF e_machine values (elf.h: EM_X86_64 62, EM_AARCH64 183,
# EM_ARM 40, EM_MIPS 8).
want_machine() {
	case "$1" in
	amd64) echo 62 ;;
	arm64) echo 183 ;;
	arm) echo 40 ;;
	mips | mipsle) echo 8 ;;
	*) echo 0 ;;
	esac
}

built=()
for target in $TARGETS; do
	IFS=/ read -r goos goarch variant <<<"$target"
	goarm="" gomips="" suffix="$goarch"
	case "$goarch" in
	arm)
		goarm=${variant:-7}
		suffix="armv$goarm"
		;;
	mips | mipsle)
		gomips=${variant:-softfloat}
		suffix="$goarch-$gomips"
		;;
	*)
		if [ -n "$variant" ]; then
			echo "release.sh: $target: a variant is only meaningful for arm and mips*" >&2
			exit 1
		fi
		;;
	esac
	out="$DIST/$NAME-$goos-$suffix"
	echo "building $out (GOOS=$goos GOARCH=$goarch${goarm:+ GOARM=$goarm}${gomips:+ GOMIPS=$gomips})"
	env CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" GOARM="$goarm" GOMIPS="$gomips" GOAMD64=v1 \
		"$GO" build -trimpath -buildvcs=false -tags noprofile \
		-ldflags "-s -w -X main.version=$VERSION" \
		-o "$out" "$PKG"

	machine=$(elf_machine "$out")
	want=$(want_machine "$goarch")
	if [ "$machine" != "$want" ]; then
		echo "release.sh: $out: ELF machine $machine, want $want" >&2
		exit 1
	fi
	if ! "$GO" version -m "$out" | grep -q 'CGO_ENABLED=0'; then
		echo "release.sh: $out was not built with CGO_ENABLED=0" >&2
		exit 1
	fi
	built+=("$out")
done

if [ "${#built[@]}" -eq 0 ]; then
	echo "release.sh: no targets" >&2
	exit 1
fi

(cd "$DIST" && $SHA256 "${built[@]#"$DIST"/}" >SHA256SUMS)

echo
echo "tcpcrypt-gw $VERSION, in $DIST/:"
for f in "${built[@]}"; do
	printf '  %-40s %9d bytes\n' "${f#"$DIST"/}" "$(wc -c <"$f")"
done
echo "  SHA256SUMS"
