#!/bin/sh
# postrm of the Debian package: on purge, the service user and group go
# (dpkg itself removes the conffiles).
set -e
if [ -z "$DPKG_ROOT" ] && [ "$1" = purge ]; then
	if getent passwd tcpcrypt-gw >/dev/null; then deluser --system tcpcrypt-gw >/dev/null || true; fi
	if getent group tcpcrypt-gw >/dev/null; then delgroup --system tcpcrypt-gw >/dev/null || true; fi
fi
if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
fi
