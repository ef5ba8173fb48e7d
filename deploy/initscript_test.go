package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// procdStub stands in for /etc/rc.common and procd's shell library
// (/lib/functions/procd.sh, /lib/functions.sh): each procd_* call and each
// call of the gateway binary is recorded, one line each, in $RECORD; UCI
// options come from UCI_<option> variables.
const procdStub = `
record() { printf '%s\n' "$*" >>"$RECORD"; }
procd_open_instance() { record "procd_open_instance $*"; }
procd_set_param() { record "procd_set_param $*"; }
procd_close_instance() { record "procd_close_instance $*"; }
procd_send_signal() { record "procd_send_signal $*"; }
procd_add_reload_trigger() { record "procd_add_reload_trigger $*"; }
procd_add_interface_trigger() { record "procd_add_interface_trigger $*"; }
config_load() { record "config_load $*"; }
config_get() { eval "$1=\${UCI_$3:-$4}"; }
config_get_bool() {
	eval "_v=\${UCI_$3:-$4}"
	case "$_v" in 1|on|true|yes|enabled) eval "$1=1" ;; *) eval "$1=0" ;; esac
}
stop() { record "stop"; }
`

// shells are the shells the script is run with: the system's sh, and
// BusyBox's ash, which is OpenWrt's /bin/sh (Makefile DEB_PKGS installs
// busybox).
var shells = [][]string{{"sh"}, {"busybox", "sh"}}

// runInit sources the init script under the stub and runs the given
// shell commands with shell; it returns the record and the exit status.
func runInit(t *testing.T, shell []string, env []string, commands string) (record string, status error) {
	t.Helper()
	dir := t.TempDir()
	rec := filepath.Join(dir, "record")
	// The gateway binary: records its arguments; check-config fails when
	// CHECK_FAILS is set.
	gw := filepath.Join(dir, "tcpcrypt-gw")
	os.WriteFile(gw, []byte("#!/bin/sh\nprintf 'binary %s\\n' \"$*\" >>\"$RECORD\"\n[ -z \"$CHECK_FAILS\" ]\n"), 0o755)
	script := filepath.Join(repoRoot(t), "deploy/openwrt/files/tcpcrypt-gw.init")
	sh := procdStub + ". " + script + "\nPROG=" + gw + "\n" + commands + "\n"
	cmd := exec.Command(shell[0], append(shell[1:], "-c", sh)...)
	cmd.Env = append(append(os.Environ(), "RECORD="+rec), env...)
	out, err := cmd.CombinedOutput()
	b, _ := os.ReadFile(rec)
	t.Logf("output: %s", out)
	return strings.ReplaceAll(string(b), gw, "PROG"), err
}

func TestInitScriptSyntax(t *testing.T) {
	script := filepath.Join(repoRoot(t), "deploy/openwrt/files/tcpcrypt-gw.init")
	for _, sh := range shells {
		needTool(t, sh[0])
		if out, err := exec.Command(sh[0], append(sh[1:], "-n", script)...).CombinedOutput(); err != nil {
			t.Fatalf("%v -n: %v\n%s", sh, err, out)
		}
	}
	if b, _ := os.ReadFile(script); !strings.HasPrefix(string(b), "#!/bin/sh /etc/rc.common\n") {
		t.Error("not an rc.common script")
	}
}

func TestInitScriptUnderProcd(t *testing.T) {
	for _, sh := range shells {
		t.Run(strings.Join(sh, " "), func(t *testing.T) {
			needTool(t, sh[0])
			initScriptUnderProcd(t, sh)
		})
	}
}

func initScriptUnderProcd(t *testing.T, sh []string) {

	// Disabled (the UCI default): nothing is started.
	rec, err := runInit(t, sh, nil, "start_service")
	if err != nil || strings.Contains(rec, "procd_open_instance") || strings.Contains(rec, "binary") {
		t.Errorf("disabled: %v\n%s", err, rec)
	}

	// Enabled: the YAML is checked, then one instance with respawn, the
	// files that make a reload, output to logd.
	rec, err = runInit(t, sh, []string{"UCI_enabled=1", "UCI_config=/etc/tcpcrypt-gw/router.yaml"}, "start_service")
	if err != nil {
		t.Fatalf("start: %v\n%s", err, rec)
	}
	want := []string{
		"config_load tcpcrypt-gw",
		"binary check-config -c /etc/tcpcrypt-gw/router.yaml",
		"procd_open_instance main",
		"procd_set_param command PROG run -c /etc/tcpcrypt-gw/router.yaml",
		"procd_set_param file /etc/tcpcrypt-gw/router.yaml /etc/config/tcpcrypt-gw",
		"procd_set_param respawn 3600 5 5",
		"procd_set_param term_timeout 15",
		"procd_set_param stdout 1",
		"procd_set_param stderr 1",
		"procd_close_instance",
	}
	checkOrder(t, rec, want)
	if strings.Contains(rec, "GOMEMLIMIT") {
		t.Errorf("the script sets GOMEMLIMIT (the gateway derives it from its config):\n%s", rec)
	}

	// A config that does not pass check-config: no instance.
	rec, err = runInit(t, sh, []string{"UCI_enabled=1", "CHECK_FAILS=1"}, "start_service")
	if err == nil || strings.Contains(rec, "procd_open_instance") {
		t.Errorf("bad config: %v\n%s", err, rec)
	}

	// Triggers: reload on a UCI commit of tcpcrypt-gw, restart when the
	// WAN interface (from UCI) comes up.
	rec, _ = runInit(t, sh, []string{"UCI_wan_interface=wan6"}, "service_triggers")
	checkOrder(t, rec, []string{
		"procd_add_reload_trigger tcpcrypt-gw",
		"procd_add_interface_trigger interface.*.up wan6 /etc/init.d/tcpcrypt-gw restart",
	})

	// Reload: check first, then SIGHUP to the instance; a bad file sends
	// nothing; disabled stops the service.
	rec, err = runInit(t, sh, []string{"UCI_enabled=1"}, "reload_service")
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	checkOrder(t, rec, []string{"binary check-config -c /etc/tcpcrypt-gw/config.yaml", "procd_send_signal tcpcrypt-gw main HUP"})
	rec, _ = runInit(t, sh, []string{"UCI_enabled=1", "CHECK_FAILS=1"}, "reload_service")
	if strings.Contains(rec, "procd_send_signal") {
		t.Errorf("reload with a bad file signalled:\n%s", rec)
	}
	rec, _ = runInit(t, sh, nil, "reload_service")
	if !strings.Contains(rec, "stop") || strings.Contains(rec, "procd_send_signal") {
		t.Errorf("reload while disabled:\n%s", rec)
	}
}

// checkOrder fails unless every line of want is in rec, in this order.
func checkOrder(t *testing.T, rec string, want []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(rec), "\n")
	i := 0
	for _, l := range lines {
		if i < len(want) && l == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("record lacks %q (in order):\n%s", want[i], rec)
	}
}

// TestFeedMakefile checks the OpenWrt feed Makefile against the files it
// installs and the .ipk nfpm builds: the OpenWrt build system is not here,
// so its macros are checked by name.
func TestFeedMakefile(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "deploy/openwrt/Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	mk := string(b)
	for _, want := range []string{
		"include $(TOPDIR)/rules.mk",
		"include $(INCLUDE_DIR)/package.mk",
		"include $(TOPDIR)/feeds/packages/lang/golang/golang-package.mk",
		"PKG_BUILD_DEPENDS:=golang/host",
		"DEPENDS:=$(GO_ARCH_DEPENDS) +kmod-tun +nftables",
		"GO_PKG_BUILD_PKG:=tcpcrypt-gw/cmd/tcpcrypt-gw",
		"GO_PKG_LDFLAGS_X:=main.version=",
		"define Package/tcpcrypt-gw/conffiles\n/etc/config/tcpcrypt-gw\n/etc/tcpcrypt-gw/config.yaml\nendef",
		"$(eval $(call GoBinPackage,tcpcrypt-gw))",
		"$(eval $(call BuildPackage,tcpcrypt-gw))",
	} {
		if !strings.Contains(mk, want) {
			t.Errorf("Makefile lacks %q", want)
		}
	}
	// Every ./files/X it installs exists, and the nfpm .ipk installs the
	// same files.
	ipk, _ := os.ReadFile(filepath.Join(root, "deploy/nfpm/ipk.yaml"))
	for _, line := range strings.Split(mk, "\n") {
		i := strings.Index(line, "./files/")
		if i < 0 {
			continue
		}
		name := strings.Fields(line[i:])[0]
		if _, err := os.Stat(filepath.Join(root, "deploy/openwrt", name)); err != nil {
			t.Errorf("Makefile installs %s: %v", name, err)
		}
		if !strings.Contains(string(ipk), "deploy/openwrt/files/"+strings.TrimPrefix(name, "./files/")) {
			t.Errorf("deploy/nfpm/ipk.yaml does not install %s", name)
		}
	}
	// The module path the Makefile builds is the module's.
	gomod, _ := os.ReadFile(filepath.Join(root, "go.mod"))
	if !strings.HasPrefix(string(gomod), "module tcpcrypt-gw\n") {
		t.Error("go.mod module is not tcpcrypt-gw (GO_PKG in deploy/openwrt/Makefile)")
	}
}
