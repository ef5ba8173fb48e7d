#!/usr/bin/env bash
# package.sh: build the installable packages of tcpcrypt-gw into dist/ (or
# $DIST): a Debian .deb and an OpenWrt .ipk per target, with nfpm
# (github.com/goreleaser/nfpm, run with `go run` at a pinned version: no
# tool to install by hand). `make package` runs it.
#
# The flow:
#  1. VERSION as in release.sh (environment, else `git describe`); the
#     package version is VERSION (without a leading v) when it starts like
#     1.2, else 0.0.0+git.VERSION (dpkg and opkg need a leading digit); '-' becomes
#     '.' so that dpkg does not read a Debian revision into it.
#  2. release.sh builds the static binaries of every target named below
#     (once each), with -X main.version=VERSION.
#  3. For each package: the architecture name of its system (Debian's, or
#     OpenWrt's for opkg), the files that differ (the systemd unit with
#     the binary in /usr/bin), then nfpm with deploy/nfpm/<kind>.yaml,
#     its ${PKG_...} variables filled in.
#  4. SHA256SUMS covers binaries and packages; the list is printed.
#
# Usage: scripts/package.sh
#        PKG_TARGETS="deb:linux/amd64 ipk:linux/mipsle/softfloat" DIST=/tmp/out scripts/package.sh
#
# OpenWrt 25 uses apk-tools 3 packages; nfpm writes only Alpine's apk v2
# format, so the .apk for OpenWrt 25 comes from the feed Makefile
# (deploy/openwrt/Makefile) built with the OpenWrt SDK.

set -euo pipefail

cd "$(dirname "$0")/.."

GO=${GO:-go}
NFPM=${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2}
export DIST=${DIST:-dist}
DEFAULT_PKG_TARGETS="deb:linux/amd64 deb:linux/arm64 ipk:linux/mipsle/softfloat ipk:linux/arm64 ipk:linux/arm/7 ipk:linux/amd64"
PKG_TARGETS=${PKG_TARGETS:-$DEFAULT_PKG_TARGETS}

if [ -z "${VERSION:-}" ]; then
	VERSION=$(git describe --tags --always --dirty 2>/dev/null || true)
	VERSION=${VERSION:-dev}
fi
export VERSION
if [[ $VERSION =~ ^v?[0-9]+\.[0-9]+ ]]; then
	PKG_VERSION=${VERSION#v}
else
	PKG_VERSION=0.0.0+git.$VERSION
fi
PKG_VERSION=${PKG_VERSION//-/.}
export PKG_VERSION

# binary_name is release.sh's file name for os/arch[/variant].
binary_name() {
	local goos goarch variant
	IFS=/ read -r goos goarch variant <<<"$1"
	case "$goarch" in
	arm) echo "tcpcrypt-gw-$goos-armv${variant:-7}" ;;
	mips | mipsle) echo "tcpcrypt-gw-$goos-$goarch-${variant:-softfloat}" ;;
	*) echo "tcpcrypt-gw-$goos-$goarch" ;;
	esac
}

# pkg_arch: the architecture as dpkg (deb) or opkg (ipk) names it. For
# OpenWrt the common name of the SoC family (README.md in deploy/openwrt
# lists them); a router whose opkg uses another name installs with
# `opkg install --force-arch` or builds the feed package.
pkg_arch() {
	case "$1:$2" in
	deb:linux/amd64) echo amd64 ;;
	deb:linux/arm64) echo arm64 ;;
	deb:linux/arm/7) echo armhf ;;
	deb:linux/mipsle*) echo mipsel ;;
	deb:linux/mips/*) echo mips ;;
	ipk:linux/amd64) echo x86_64 ;;
	ipk:linux/arm64) echo aarch64_cortex-a53 ;;
	ipk:linux/arm/7) echo arm_cortex-a7_neon-vfpv4 ;;
	ipk:linux/mipsle*) echo mipsel_24kc ;;
	ipk:linux/mips/*) echo mips_24kc ;;
	*)
		echo "package.sh: no $1 architecture for $2" >&2
		return 1
		;;
	esac
}

# render prints an nfpm configuration with the ${PKG_...} variables filled
# in (nfpm itself expands the environment in some fields only, not in the
# file lists).
render() {
	local v text
	text=$(<"$1")
	for v in PKG_ARCH PKG_BINARY PKG_VERSION PKG_WORK; do
		text=${text//"\${$v}"/${!v}}
	done
	printf '%s\n' "$text"
}

# 2. The binaries, each target once.
targets=""
for pt in $PKG_TARGETS; do
	t=${pt#*:}
	case " $targets " in *" $t "*) ;; *) targets="$targets $t" ;; esac
	pkg_arch "${pt%%:*}" "$t" >/dev/null
done
TARGETS="${targets# }" bash scripts/release.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PKG_WORK=$work
# The unit as installed by hand names /usr/local/bin; the package puts the
# binary in /usr/bin.
sed 's#/usr/local/bin/tcpcrypt-gw#/usr/bin/tcpcrypt-gw#g' deploy/systemd/tcpcrypt-gw.service >"$work/tcpcrypt-gw.service"

# 3. The packages.
rm -f "$DIST"/tcpcrypt-gw_*.deb "$DIST"/tcpcrypt-gw_*.ipk
built=()
for pt in $PKG_TARGETS; do
	kind=${pt%%:*} t=${pt#*:}
	PKG_ARCH=$(pkg_arch "$kind" "$t")
	PKG_BINARY="$DIST/$(binary_name "$t")"
	export PKG_ARCH PKG_BINARY
	out="$DIST/tcpcrypt-gw_${PKG_VERSION}_${PKG_ARCH}.$kind"
	echo "packaging $out"
	render "deploy/nfpm/$kind.yaml" >"$work/$kind.yaml"
	"$GO" run "$NFPM" package -f "$work/$kind.yaml" -p "$kind" -t "$out" >/dev/null
	built+=("$out")
done

# 4. Checksums of everything in DIST that this and release.sh made.
(cd "$DIST" && sha256sum tcpcrypt-gw-linux-* "${built[@]#"$DIST"/}" >SHA256SUMS)
echo
echo "tcpcrypt-gw $VERSION (package version $PKG_VERSION), in $DIST/:"
for f in "${built[@]}"; do
	printf '  %-52s %9d bytes\n' "${f#"$DIST"/}" "$(wc -c <"$f")"
done
