#!/bin/sh
# postinst of the .ipk, as OpenWrt's default_postinst does for packages of
# the feed: enable the init script (it starts nothing while the UCI switch
# is off). Not when opkg installs into an image root (IPKG_INSTROOT).
[ -n "$IPKG_INSTROOT" ] && exit 0
/etc/init.d/tcpcrypt-gw enable
exit 0
