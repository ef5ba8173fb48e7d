#!/bin/sh
# prerm of the .ipk: stop and disable the service before its files go.
[ -n "$IPKG_INSTROOT" ] && exit 0
/etc/init.d/tcpcrypt-gw stop 2>/dev/null
/etc/init.d/tcpcrypt-gw disable 2>/dev/null
exit 0
