#!/bin/sh
# postinst of the Debian package: the service user and group, the
# configuration readable by that group only (it may name a token file),
# systemd told about the unit. The service is neither enabled nor started:
# the configuration must first name the router's interfaces.
#
# With DPKG_ROOT set (dpkg --root with --force-script-chrootless, as the
# package test installs it), only files below DPKG_ROOT are touched.
set -e

case "$1" in
configure) ;;
*) exit 0 ;;
esac

if [ -n "$DPKG_ROOT" ]; then
	exit 0
fi

if ! getent group tcpcrypt-gw >/dev/null; then
	addgroup --system tcpcrypt-gw >/dev/null
fi
if ! getent passwd tcpcrypt-gw >/dev/null; then
	adduser --system --no-create-home --home /nonexistent --ingroup tcpcrypt-gw \
		--shell /usr/sbin/nologin tcpcrypt-gw >/dev/null
fi
chown root:tcpcrypt-gw /etc/tcpcrypt-gw /etc/tcpcrypt-gw/config.yaml
chmod 0750 /etc/tcpcrypt-gw
chmod 0640 /etc/tcpcrypt-gw/config.yaml

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
fi
if [ -z "$2" ]; then
	echo "tcpcrypt-gw: name the interfaces in /etc/tcpcrypt-gw/config.yaml, then: systemctl enable --now tcpcrypt-gw"
fi
