#!/bin/sh
# postinst (and post-upgrade) of luci-app-tcpcrypt-gw, as LuCI's own
# packages do: drop LuCI's caches of menus and modules and reload rpcd, so
# the new menu entry, ACL and rpcd plugin are used without a reboot. Not
# when installing into an image root (IPKG_INSTROOT).
[ -n "$IPKG_INSTROOT" ] && exit 0
rm -f /tmp/luci-indexcache /tmp/luci-indexcache.* 2>/dev/null
rm -rf /tmp/luci-modulecache 2>/dev/null
[ -x /etc/init.d/rpcd ] && /etc/init.d/rpcd reload
exit 0
