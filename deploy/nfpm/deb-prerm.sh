#!/bin/sh
# prerm of the Debian package: stop the gateway before its binary goes
# (on removal; an upgrade restarts it in postinst's place by the admin).
set -e
if [ -z "$DPKG_ROOT" ] && [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl disable --now tcpcrypt-gw.service >/dev/null 2>&1 || true
fi
