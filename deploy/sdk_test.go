package deploy

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The OpenWrt SDK is not here; sdkStub is the part of it the two package
// Makefiles use, at the same places in the tree: rules.mk, include/
// package.mk, the packages feed's golang-package.mk and the luci feed's
// luci.mk. Its `compile` does what the SDK does with a package up to the
// packing: evaluate Package/<name> (DEPENDS), Build/Prepare, the Go
// build of GO_PKG_BUILD_PKG with GO_PKG_LDFLAGS_X (with the host's Go),
// Package/<name>/install into a root, then place the conffiles as
// include/package-pack.mk does for the format: CONTROL/conffiles for
// opkg, lib/apk/packages/<name>.conffiles with CONFIG_USE_APK=y.
var sdkStub = map[string]string{
	"rules.mk": `
INCLUDE_DIR:=$(TOPDIR)/include
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_CONF:=install -m0600
INSTALL_DATA:=install -m0644
STUB_ROOT:=$(TOPDIR)/root
`,
	"include/package.mk": `
PKG_BUILD_DIR ?= $(TOPDIR)/build_dir/$(PKG_NAME)-$(PKG_VERSION)
BuildPackage = $(eval $(Package/$(1)))$(eval STUB_PKG:=$(1))
.PHONY: compile
compile:
	rm -rf $(STUB_ROOT) $(PKG_BUILD_DIR)
	mkdir -p $(STUB_ROOT) $(PKG_BUILD_DIR)
	$(Build/Prepare)
	$(Build/Compile)
	$(call Package/$(STUB_PKG)/install,$(STUB_ROOT))
	$(file >$(TOPDIR)/depends,$(DEPENDS))
	$(file >$(TOPDIR)/conffiles,$(call Package/$(STUB_PKG)/conffiles))
ifeq ($(CONFIG_USE_APK),y)
	mkdir -p $(STUB_ROOT)/lib/apk/packages
	cp $(TOPDIR)/conffiles $(STUB_ROOT)/lib/apk/packages/$(STUB_PKG).conffiles
else
	mkdir -p $(STUB_ROOT)/CONTROL
	cp $(TOPDIR)/conffiles $(STUB_ROOT)/CONTROL/conffiles
endif
`,
	"feeds/packages/lang/golang/golang-package.mk": `
GO_ARCH_DEPENDS:=@(aarch64||arm||i386||i686||mips||mips64||mips64el||mipsel||powerpc64||x86_64)
define Build/Compile
	cd $(PKG_BUILD_DIR) && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X $(GO_PKG_LDFLAGS_X)" -o $(PKG_BUILD_DIR)/.go_bin/$(notdir $(GO_PKG_BUILD_PKG)) $(GO_PKG_BUILD_PKG)
endef
define GoPackage/Package/Install/Bin
	$(INSTALL_DIR) $(1)/usr/bin
	$(INSTALL_BIN) $(PKG_BUILD_DIR)/.go_bin/* $(1)/usr/bin/
endef
GoBinPackage =
`,
	"feeds/luci/luci.mk": `
PKG_NAME ?= $(notdir $(CURDIR))
.PHONY: compile
compile:
	rm -rf $(STUB_ROOT) && mkdir -p $(STUB_ROOT)/www
	cp -pR htdocs/. $(STUB_ROOT)/www/
	cp -pR root/. $(STUB_ROOT)/
	$(file >$(TOPDIR)/depends,$(LUCI_DEPENDS))
`,
}

// sdkCompile copies a package directory to <sdk>/package/<name> of a new
// stub SDK and runs its compile; it returns the installed root's regular
// files (path -> mode) and the SDK's top directory.
func sdkCompile(t *testing.T, pkgDir, name string, vars ...string) (map[string]fs.FileMode, string) {
	t.Helper()
	needTool(t, "make")
	top := t.TempDir()
	for f, text := range sdkStub {
		p := filepath.Join(top, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(text), 0o644)
	}
	dst := filepath.Join(top, "package", name)
	os.MkdirAll(filepath.Dir(dst), 0o755)
	if out, err := exec.Command("cp", "-pR", pkgDir, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	cmd := exec.Command("make", append([]string{"-C", dst, "compile", "TOPDIR=" + top}, vars...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make compile %v: %v\n%s", vars, err, out)
	}
	files := map[string]fs.FileMode{}
	root := filepath.Join(top, "root")
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			st, _ := d.Info()
			rel, _ := filepath.Rel(root, p)
			files[rel] = st.Mode().Perm()
		}
		return err
	})
	return files, top
}

// TestFeedMakefileBuildsBothFormats runs deploy/openwrt/Makefile in the
// stub SDK, as opkg's and as apk's build (CONFIG_USE_APK=y): the same
// files, the binary built from the copied tree with its version, the
// conffiles where each format keeps them, and the dependencies.
func TestFeedMakefileBuildsBothFormats(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway")
	}
	root := repoRoot(t)
	payload := map[string]fs.FileMode{
		"usr/bin/tcpcrypt-gw":               0o755,
		"etc/init.d/tcpcrypt-gw":            0o755,
		"usr/share/tcpcrypt-gw/uci2yaml.sh": 0o644,
		"etc/config/tcpcrypt-gw":            0o600,
		"etc/tcpcrypt-gw/config.yaml":       0o600,
	}
	for _, format := range []struct {
		name, conffiles string
		vars            []string
	}{
		{"ipk", "CONTROL/conffiles", nil},
		{"apk", "lib/apk/packages/tcpcrypt-gw.conffiles", []string{"CONFIG_USE_APK=y"}},
	} {
		t.Run(format.name, func(t *testing.T) {
			files, top := sdkCompile(t, filepath.Join(root, "deploy/openwrt"), "tcpcrypt-gw", append(format.vars, "TCPCRYPT_GW_SRC="+root)...)
			for f, mode := range payload {
				if files[f] != mode {
					t.Errorf("%s: mode %o, want %o", f, files[f], mode)
				}
			}
			if len(files) != len(payload)+1 {
				t.Errorf("files %v", files)
			}
			conf, _ := os.ReadFile(filepath.Join(top, "root", format.conffiles))
			if strings.Fields(string(conf)) == nil || strings.Join(strings.Fields(string(conf)), " ") != "/etc/config/tcpcrypt-gw /etc/tcpcrypt-gw/config.yaml" {
				t.Errorf("%s: %q", format.conffiles, conf)
			}
			for _, c := range strings.Fields(string(conf)) {
				if _, ok := files[strings.TrimPrefix(c, "/")]; !ok {
					t.Errorf("conffile %s is not installed", c)
				}
			}
			deps, _ := os.ReadFile(filepath.Join(top, "depends"))
			if !strings.HasSuffix(strings.TrimSpace(string(deps)), "+kmod-tun +nftables") {
				t.Errorf("DEPENDS %q", deps)
			}
			out, err := exec.Command(filepath.Join(top, "root/usr/bin/tcpcrypt-gw"), "--version").CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), "tcpcrypt-gw 0.1.0-r1 ") {
				t.Errorf("the built binary: %v %q", err, out)
			}
			for src, dst := range map[string]string{"files/tcpcrypt-gw.init": "etc/init.d/tcpcrypt-gw", "files/uci2yaml.sh": "usr/share/tcpcrypt-gw/uci2yaml.sh", "files/tcpcrypt-gw.config": "etc/config/tcpcrypt-gw"} {
				a, _ := os.ReadFile(filepath.Join(root, "deploy/openwrt", src))
				b, _ := os.ReadFile(filepath.Join(top, "root", dst))
				if string(a) != string(b) {
					t.Errorf("%s differs from %s", dst, src)
				}
			}
		})
	}
}

// TestLuCIAppPackage runs the LuCI app's Makefile in the stub SDK (as
// luci.mk installs it: htdocs under /www, root under /) and checks what
// LuCI and rpcd find there: the views the menu names, the ACL granting
// the plugin's methods and the UCI config, the executable plugin.
func TestLuCIAppPackage(t *testing.T) {
	root := repoRoot(t)
	app := filepath.Join(root, "deploy/openwrt/luci-app-tcpcrypt-gw")
	mk, _ := os.ReadFile(filepath.Join(app, "Makefile"))
	for _, want := range []string{"include $(TOPDIR)/rules.mk", "LUCI_DEPENDS:=+luci-base +tcpcrypt-gw", "LUCI_PKGARCH:=all", "include $(TOPDIR)/feeds/luci/luci.mk"} {
		if !strings.Contains(string(mk), want) {
			t.Errorf("Makefile lacks %q", want)
		}
	}
	files, top := sdkCompile(t, app, "luci-app-tcpcrypt-gw")
	want := map[string]fs.FileMode{
		"www/luci-static/resources/view/tcpcrypt-gw/settings.js": 0o644,
		"www/luci-static/resources/view/tcpcrypt-gw/status.js":   0o644,
		"usr/share/luci/menu.d/luci-app-tcpcrypt-gw.json":        0o644,
		"usr/share/rpcd/acl.d/luci-app-tcpcrypt-gw.json":         0o644,
		"usr/libexec/rpcd/tcpcrypt-gw":                           0o755,
	}
	for f, mode := range want {
		if m, ok := files[f]; !ok || m != mode {
			t.Errorf("%s: mode %o (installed %v), want %o", f, m, ok, mode)
		}
	}
	if len(files) != len(want) {
		t.Errorf("files %v", files)
	}
	// The menu's views exist; the ACL is the one the menu depends on.
	var menu map[string]struct {
		Action struct {
			Type, Path string
		}
		Depends struct {
			ACL []string
			UCI map[string]bool
		}
	}
	readJSON(t, filepath.Join(top, "root/usr/share/luci/menu.d/luci-app-tcpcrypt-gw.json"), &menu)
	views := 0
	for name, e := range menu {
		if e.Action.Type == "view" {
			views++
			if _, ok := files["www/luci-static/resources/view/"+e.Action.Path+".js"]; !ok {
				t.Errorf("menu %s names the missing view %s", name, e.Action.Path)
			}
		}
	}
	top0 := menu["admin/services/tcpcrypt-gw"]
	if views != 2 || len(top0.Depends.ACL) != 1 || top0.Depends.ACL[0] != "luci-app-tcpcrypt-gw" || !top0.Depends.UCI["tcpcrypt-gw"] {
		t.Errorf("menu: %+v", menu)
	}
	var acl map[string]struct {
		Read struct {
			Ubus map[string][]string
			UCI  []string
		}
		Write struct{ UCI []string }
	}
	readJSON(t, filepath.Join(top, "root/usr/share/rpcd/acl.d/luci-app-tcpcrypt-gw.json"), &acl)
	a := acl["luci-app-tcpcrypt-gw"]
	if strings.Join(a.Read.Ubus["tcpcrypt-gw"], ",") != "status,check" || strings.Join(a.Read.UCI, ",") != "tcpcrypt-gw" || strings.Join(a.Write.UCI, ",") != "tcpcrypt-gw" {
		t.Errorf("ACL: %+v", acl)
	}
	// The plugin's methods are the ACL's (rpcd lists them with `list`).
	out, err := exec.Command("sh", filepath.Join(top, "root/usr/libexec/rpcd/tcpcrypt-gw"), "list").Output()
	if err != nil || string(out) != "{\"status\":{},\"check\":{\"uci_hex\":\"str\"}}\n" {
		t.Errorf("plugin list: %v %q", err, out)
	}
	deps, _ := os.ReadFile(filepath.Join(top, "depends"))
	if strings.TrimSpace(string(deps)) != "+luci-base +tcpcrypt-gw" {
		t.Errorf("LUCI_DEPENDS %q", deps)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
