package deploy

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"tcpcrypt-gw/deploy/adbread"
)

// checkAPK reads the .apk for OpenWrt 25 back with deploy/adbread (written
// from apk-tools' description of the format, apart from the writer,
// deploy/apkv3) and checks it carries what the .ipk carries: the same
// files with the same modes and bytes, the same conffiles and
// dependencies, the .ipk's postinst and prerm as apk's post-install (and
// post-upgrade) and pre-deinstall; plus OpenWrt's /lib/apk/packages
// lists.
func checkAPK(t *testing.T, apk, ipk string) {
	p, err := adbread.ReadFile(apk)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "tcpcrypt-gw" || p.Version != "1.2.3-r0" || p.Arch != "mipsel_24kc" || p.Compression != "deflate" {
		t.Errorf("info: name %q version %q arch %q compression %s", p.Name, p.Version, p.Arch, p.Compression)
	}
	if p.Description == "" || p.Maintainer == "" || p.URL == "" || p.BuildTime == 0 {
		t.Errorf("info: %+v", p)
	}
	// OpenWrt 25.12 signs the index, not the package (docs/deploy.md).
	if p.SigBlocks != 0 {
		t.Errorf("%d signature blocks", p.SigBlocks)
	}
	if !p.UniqueIDOK {
		t.Error("the unique id is not the block's SHA-256")
	}

	b, err := os.ReadFile(ipk)
	if err != nil {
		t.Fatal(err)
	}
	outer := tgzFiles(t, b)
	control := tgzFiles(t, outer["control.tar.gz"].data)
	ipkData := tgzFiles(t, outer["data.tar.gz"].data)

	// Dependencies: the .ipk's Depends.
	var ipkDeps []string
	for _, line := range strings.Split(string(control["control"].data), "\n") {
		if v, ok := strings.CutPrefix(line, "Depends: "); ok {
			for _, d := range strings.Split(v, ",") {
				ipkDeps = append(ipkDeps, strings.TrimSpace(d))
			}
		}
	}
	sort.Strings(ipkDeps)
	if !slices.Equal(p.Depends, ipkDeps) || !slices.Equal(p.Depends, []string{"kmod-tun", "nftables"}) {
		t.Errorf("depends %q, the .ipk's %q, want kmod-tun and nftables", p.Depends, ipkDeps)
	}

	// Files: those of the .ipk, same mode and content, owned by root.
	files := p.Files()
	var ipkFiles []string
	for name, e := range ipkData {
		if e.hdr.Typeflag != '0' {
			continue
		}
		ipkFiles = append(ipkFiles, "/"+name)
		f := files["/"+name]
		if f == nil {
			t.Errorf("/%s is in the .ipk, not in the .apk", name)
			continue
		}
		if f.Mode != os.FileMode(e.hdr.Mode).Perm() || !bytes.Equal(f.Data, e.data) || f.User != "root" || f.Group != "root" {
			t.Errorf("/%s: mode %o (ipk %o), %s:%s, same bytes %v", name, f.Mode, e.hdr.Mode, f.User, f.Group, bytes.Equal(f.Data, e.data))
		}
	}
	sort.Strings(ipkFiles)
	meta := map[string]bool{
		"/lib/apk/packages/tcpcrypt-gw.conffiles":        true,
		"/lib/apk/packages/tcpcrypt-gw.conffiles_static": true,
		"/lib/apk/packages/tcpcrypt-gw.list":             true,
	}
	for name := range files {
		if !meta[name] && !slices.Contains(ipkFiles, name) {
			t.Errorf("%s is in the .apk only", name)
		}
	}
	if len(ipkFiles) != 5 {
		t.Errorf(".ipk files %q", ipkFiles)
	}

	// Conffiles: the .ipk's, in OpenWrt's lists (sysupgrade keeps them).
	ipkConf := strings.Fields(string(control["conffiles"].data))
	sort.Strings(ipkConf)
	conf := files["/lib/apk/packages/tcpcrypt-gw.conffiles"]
	static := files["/lib/apk/packages/tcpcrypt-gw.conffiles_static"]
	list := files["/lib/apk/packages/tcpcrypt-gw.list"]
	if conf == nil || static == nil || list == nil {
		t.Fatal("OpenWrt's /lib/apk/packages lists missing")
	}
	apkConf := strings.Fields(string(conf.Data))
	sort.Strings(apkConf)
	if !slices.Equal(apkConf, ipkConf) || len(ipkConf) != 2 {
		t.Errorf("conffiles %q, the .ipk's %q", apkConf, ipkConf)
	}
	for _, c := range ipkConf {
		line := fmt.Sprintf("%s %x\n", c, sha256.Sum256(files[c].Data))
		if !strings.Contains(string(static.Data), line) {
			t.Errorf("conffiles_static lacks %q:\n%s", line, static.Data)
		}
	}
	if got := strings.Fields(string(list.Data)); !slices.Equal(got, ipkFiles) {
		t.Errorf(".list %q, want %q", got, ipkFiles)
	}

	// Scripts: postinst for install and upgrade, prerm before removal.
	for kind, ipkScript := range map[string]string{"post-install": "postinst", "post-upgrade": "postinst", "pre-deinstall": "prerm"} {
		s, ok := p.Scripts[kind]
		if !ok || s != string(control[ipkScript].data) {
			t.Errorf("%s: %q, want the .ipk's %s", kind, s, ipkScript)
			continue
		}
		f := filepath.Join(t.TempDir(), kind)
		os.WriteFile(f, []byte(s), 0o755)
		run(t, "sh", "-n", f)
	}
	if len(p.Scripts) != 3 {
		t.Errorf("scripts %q", p.Scripts)
	}
	checkMipsleBinary(t, files["/usr/bin/tcpcrypt-gw"].Data)
}

// checkLuCIPackages: make package also builds the LuCI app, without an
// architecture, as an .ipk ("all") and an .apk ("noarch"), both with the
// app's files where luci.mk puts them, its dependencies and the postinst
// that reloads rpcd.
func checkLuCIPackages(t *testing.T, dist string) {
	app := filepath.Join(repoRoot(t), "deploy/openwrt/luci-app-tcpcrypt-gw")
	want := map[string]string{ // installed path -> source in app
		"/www/luci-static/resources/view/tcpcrypt-gw/settings.js": "htdocs/luci-static/resources/view/tcpcrypt-gw/settings.js",
		"/www/luci-static/resources/view/tcpcrypt-gw/status.js":   "htdocs/luci-static/resources/view/tcpcrypt-gw/status.js",
		"/usr/share/luci/menu.d/luci-app-tcpcrypt-gw.json":        "root/usr/share/luci/menu.d/luci-app-tcpcrypt-gw.json",
		"/usr/share/rpcd/acl.d/luci-app-tcpcrypt-gw.json":         "root/usr/share/rpcd/acl.d/luci-app-tcpcrypt-gw.json",
		"/usr/libexec/rpcd/tcpcrypt-gw":                           "root/usr/libexec/rpcd/tcpcrypt-gw",
	}
	// Every file of the app directory but its Makefile is packaged.
	n := 0
	filepath.Walk(app, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && filepath.Base(p) != "Makefile" {
			n++
		}
		return err
	})
	if n != len(want) {
		t.Errorf("the app has %d files, the packages %d", n, len(want))
	}
	postinst, _ := os.ReadFile(filepath.Join(repoRoot(t), "deploy/nfpm/luci-postinst.sh"))

	p, err := adbread.ReadFile(filepath.Join(dist, "luci-app-tcpcrypt-gw_1.2.3-r0_noarch.apk"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "luci-app-tcpcrypt-gw" || p.Arch != "noarch" || !slices.Equal(p.Depends, []string{"luci-base", "tcpcrypt-gw"}) ||
		p.Scripts["post-install"] != string(postinst) || p.Scripts["post-upgrade"] != string(postinst) {
		t.Errorf(".apk info: %+v", p)
	}
	files := p.Files()
	b, err := os.ReadFile(filepath.Join(dist, "luci-app-tcpcrypt-gw_1.2.3.test_all.ipk"))
	if err != nil {
		t.Fatal(err)
	}
	outer := tgzFiles(t, b)
	control := tgzFiles(t, outer["control.tar.gz"].data)
	data := tgzFiles(t, outer["data.tar.gz"].data)
	if c := string(control["control"].data); !strings.Contains(c, "Architecture: all\n") || !strings.Contains(c, "Depends: luci-base, tcpcrypt-gw\n") {
		t.Errorf(".ipk control:\n%s", c)
	}
	if string(control["postinst"].data) != string(postinst) {
		t.Errorf(".ipk postinst %q", control["postinst"].data)
	}
	for dst, src := range want {
		orig, err := os.ReadFile(filepath.Join(app, src))
		if err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(dst, "/usr/libexec/") {
			mode = 0o755
		}
		if f := files[dst]; f == nil || !bytes.Equal(f.Data, orig) || f.Mode != mode {
			t.Errorf(".apk %s: %+v", dst, f)
		}
		if e, ok := data[strings.TrimPrefix(dst, "/")]; !ok || !bytes.Equal(e.data, orig) || os.FileMode(e.hdr.Mode).Perm() != mode {
			t.Errorf(".ipk %s missing or different", dst)
		}
	}
	f := filepath.Join(t.TempDir(), "postinst")
	os.WriteFile(f, postinst, 0o755)
	run(t, "sh", "-n", f)
}
