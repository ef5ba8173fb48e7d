#!/usr/bin/env bash
# package.sh: build the installable packages of tcpcrypt-gw into dist/ (or
# $DIST): a Debian .deb, an OpenWrt .ipk (opkg, OpenWrt up to 24.10) and an
# OpenWrt .apk (apk-tools 3, OpenWrt 25.12) per target. The .deb and .ipk
# come from nfpm (github.com/goreleaser/nfpm, run with `go run` at a pinned
# version: no tool to install by hand); nfpm writes only Alpine's older apk
# format, so the .apk comes from deploy/apkv3/mkapk (this repository's
# writer of the apk v3 format). `make package` runs it.
#
# The flow:
#  1. VERSION as in release.sh (environment, else `git describe`); the
#     package version is VERSION (without a leading v) when it starts like
#     1.2, else 0.0.0+git.VERSION (dpkg and opkg need a leading digit); '-' becomes
#     '.' so that dpkg does not read a Debian revision into it. apk's
#     stricter grammar (apk-package(5)) gets APK_VERSION: the leading
#     numbers, _pN~HASH for a `git describe` N commits past a tag, ~HASH
#     for a bare commit, other text dropped; then -r0.
#  2. release.sh builds the static binaries of every target named below
#     (once each), with -X main.version=VERSION.
#  3. For each package: the architecture name of its system (Debian's, or
#     OpenWrt's for opkg and apk), the files that differ (the systemd unit
#     with the binary in /usr/bin), then nfpm with deploy/nfpm/<kind>.yaml,
#     its ${PKG_...} variables filled in; for apk, mkapk with the .ipk's
#     files, conffiles, dependencies and scripts (postinst as post-install
#     and post-upgrade, prerm as pre-deinstall, as OpenWrt's build maps
#     them). The .apk is not signed: OpenWrt 25.12 signs the repository
#     index, not each package (include/package-pack.mk runs `apk mkpkg`
#     without a key); a package installed from a file takes
#     `apk add --allow-untrusted`.
#  4. The LuCI app (deploy/openwrt/luci-app-tcpcrypt-gw), which has no
#     architecture: one .ipk ("all") and one .apk ("noarch") when any
#     OpenWrt package is built.
#  5. SHA256SUMS covers binaries and packages; the list is printed.
#
# Usage: scripts/package.sh
#        PKG_TARGETS="deb:linux/amd64 ipk:linux/mipsle/softfloat apk:linux/mipsle/softfloat" DIST=/tmp/out scripts/package.sh

set -euo pipefail

cd "$(dirname "$0")/.."

GO=${GO:-go}
NFPM=${NFPM:-github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2}
export DIST=${DIST:-dist}
DEFAULT_PKG_TARGETS="deb:linux/amd64 deb:linux/arm64 ipk:linux/mipsle/softfloat ipk:linux/arm64 ipk:linux/arm/7 ipk:linux/amd64 apk:linux/mipsle/softfloat apk:linux/arm64 apk:linux/arm/7 apk:linux/amd64"
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
v=${VERSION#v}
v=${v%-dirty}
APK_VERSION=0.0.0
# Leading numbers only from a version (as PKG_VERSION tells one): a bare
# commit such as 570f841 starts with digits too, and must not become 570.
if [[ $VERSION =~ ^v?[0-9]+\.[0-9]+ ]] && [[ $v =~ ^([0-9]+(\.[0-9]+)*)(.*)$ ]]; then
	APK_VERSION=${BASH_REMATCH[1]}
	v=${BASH_REMATCH[3]}
fi
if [[ $v =~ ^-([0-9]+)-g([0-9a-f]+)$ ]]; then
	APK_VERSION+=_p${BASH_REMATCH[1]}~${BASH_REMATCH[2]}
elif [[ $v =~ ^[0-9a-f]{7,}$ ]]; then
	APK_VERSION+=~$v
fi
APK_VERSION+=-r0
# --versions: print the two versions and stop (deploy's TestPackageVersions).
if [ "${1:-}" = --versions ]; then
	echo "$PKG_VERSION $APK_VERSION"
	exit 0
fi

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

# pkg_arch: the architecture as dpkg (deb) or opkg (ipk) names it; apk on
# OpenWrt 25 uses opkg's names (/etc/apk/arch). For
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
	apk:*) pkg_arch ipk "$2" ;;
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
rm -f "$DIST"/tcpcrypt-gw_*.deb "$DIST"/tcpcrypt-gw_*.ipk "$DIST"/tcpcrypt-gw_*.apk "$DIST"/luci-app-tcpcrypt-gw_*
# The .apk's build time and file times: the last commit's, for packages
# that are the same when built again.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
case " $PKG_TARGETS" in *" apk:"*) "$GO" build -o "$work/mkapk" ./deploy/apkv3/mkapk ;; esac
built=()
for pt in $PKG_TARGETS; do
	kind=${pt%%:*} t=${pt#*:}
	PKG_ARCH=$(pkg_arch "$kind" "$t")
	PKG_BINARY="$DIST/$(binary_name "$t")"
	export PKG_ARCH PKG_BINARY
	if [ "$kind" = apk ]; then
		out="$DIST/tcpcrypt-gw_${APK_VERSION}_${PKG_ARCH}.apk"
		echo "packaging $out"
		# The files, conffiles, dependencies and scripts of ipk.yaml.
		"$work/mkapk" -o "$out" \
			-name tcpcrypt-gw -version "$APK_VERSION" -arch "$PKG_ARCH" \
			-description "Transparent tcpcrypt gateway (TCP-ENO, RFC 8547/8548)" \
			-maintainer "tcpcrypt-gw developers <tcpcrypt-gw@localhost>" \
			-url https://www.rfc-editor.org/rfc/rfc8548 \
			-depends "kmod-tun nftables" \
			-file "$PKG_BINARY:/usr/bin/tcpcrypt-gw:0755" \
			-file deploy/openwrt/files/tcpcrypt-gw.init:/etc/init.d/tcpcrypt-gw:0755 \
			-file deploy/openwrt/files/uci2yaml.sh:/usr/share/tcpcrypt-gw/uci2yaml.sh:0644 \
			-file deploy/openwrt/files/tcpcrypt-gw.config:/etc/config/tcpcrypt-gw:0600 \
			-file deploy/openwrt/files/config.yaml:/etc/tcpcrypt-gw/config.yaml:0600 \
			-conffile /etc/config/tcpcrypt-gw -conffile /etc/tcpcrypt-gw/config.yaml \
			-script post-install:deploy/nfpm/ipk-postinst.sh \
			-script post-upgrade:deploy/nfpm/ipk-postinst.sh \
			-script pre-deinstall:deploy/nfpm/ipk-prerm.sh
		built+=("$out")
		continue
	fi
	out="$DIST/tcpcrypt-gw_${PKG_VERSION}_${PKG_ARCH}.$kind"
	echo "packaging $out"
	render "deploy/nfpm/$kind.yaml" >"$work/$kind.yaml"
	"$GO" run "$NFPM" package -f "$work/$kind.yaml" -p "$kind" -t "$out" >/dev/null
	built+=("$out")
done

# 4. The LuCI app, architecture-independent: once for opkg, once for apk,
# when any OpenWrt package was asked for (deploy/nfpm/luci-ipk.yaml lists
# its files; the .apk carries the same).
case " $PKG_TARGETS" in *" ipk:"*)
	out="$DIST/luci-app-tcpcrypt-gw_${PKG_VERSION}_all.ipk"
	echo "packaging $out"
	render deploy/nfpm/luci-ipk.yaml >"$work/luci-ipk.yaml"
	"$GO" run "$NFPM" package -f "$work/luci-ipk.yaml" -p ipk -t "$out" >/dev/null
	built+=("$out")
	;;
esac
case " $PKG_TARGETS" in *" apk:"*)
	out="$DIST/luci-app-tcpcrypt-gw_${APK_VERSION}_noarch.apk"
	echo "packaging $out"
	luci=deploy/openwrt/luci-app-tcpcrypt-gw
	"$work/mkapk" -o "$out" \
		-name luci-app-tcpcrypt-gw -version "$APK_VERSION" -arch noarch \
		-description "LuCI pages of tcpcrypt-gw (settings and status)" \
		-maintainer "tcpcrypt-gw developers <tcpcrypt-gw@localhost>" \
		-url https://www.rfc-editor.org/rfc/rfc8548 \
		-depends "luci-base tcpcrypt-gw" \
		-file "$luci/htdocs/luci-static/resources/view/tcpcrypt-gw/settings.js:/www/luci-static/resources/view/tcpcrypt-gw/settings.js:0644" \
		-file "$luci/htdocs/luci-static/resources/view/tcpcrypt-gw/status.js:/www/luci-static/resources/view/tcpcrypt-gw/status.js:0644" \
		-file "$luci/root/usr/share/luci/menu.d/luci-app-tcpcrypt-gw.json:/usr/share/luci/menu.d/luci-app-tcpcrypt-gw.json:0644" \
		-file "$luci/root/usr/share/rpcd/acl.d/luci-app-tcpcrypt-gw.json:/usr/share/rpcd/acl.d/luci-app-tcpcrypt-gw.json:0644" \
		-file "$luci/root/usr/libexec/rpcd/tcpcrypt-gw:/usr/libexec/rpcd/tcpcrypt-gw:0755" \
		-script post-install:deploy/nfpm/luci-postinst.sh \
		-script post-upgrade:deploy/nfpm/luci-postinst.sh
	built+=("$out")
	;;
esac

# 5. Checksums of everything in DIST that this and release.sh made.
(cd "$DIST" && sha256sum tcpcrypt-gw-linux-* "${built[@]#"$DIST"/}" >SHA256SUMS)
echo
echo "tcpcrypt-gw $VERSION (package version $PKG_VERSION, apk $APK_VERSION), in $DIST/:"
for f in "${built[@]}"; do
	printf '  %-52s %9d bytes\n' "${f#"$DIST"/}" "$(wc -c <"$f")"
done
