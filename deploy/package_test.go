// Tests of what deploy/ ships: the packages `make package` builds
// (scripts/package.sh with nfpm), installed into a temporary root with
// dpkg or taken apart like opkg does, and the OpenWrt procd script run
// under a stub of procd's shell library that records what it was given.
package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"tcpcrypt-gw/deploy/apkv3"
)

// repoRoot is the repository's top directory (this package is deploy/).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// needTool fails under CI (where `make test` installs everything) and
// skips elsewhere when a tool is missing.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing under CI=true", name)
		}
		t.Skipf("%s missing", name)
	}
}

const testVersion = "1.2.3-test"

// mipsleMax is the most the stripped mipsle binary may weigh: 8 MiB, the
// budget of docs/deploy.md for a 16 MB-flash router.
const mipsleMax = 8 << 20

// buildPackages runs scripts/package.sh for one .deb (amd64), one .ipk and
// one .apk (mipsle, the most common OpenWrt router CPU) into a temporary
// dist.
func buildPackages(t *testing.T) (deb, ipk, apk string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds binaries and packages")
	}
	if runtime.GOOS != "linux" {
		t.Skip("packages are built on Linux")
	}
	needTool(t, "bash")
	needTool(t, "sha256sum")
	dist := t.TempDir()
	cmd := exec.Command("bash", "scripts/package.sh")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION="+testVersion,
		"PKG_TARGETS=deb:linux/amd64 ipk:linux/mipsle/softfloat apk:linux/mipsle/softfloat")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("package.sh: %v\n%s", err, out)
	}
	// VERSION 1.2.3-test: the package version keeps its digits, '-' -> '.'
	deb = filepath.Join(dist, "tcpcrypt-gw_1.2.3.test_amd64.deb")
	ipk = filepath.Join(dist, "tcpcrypt-gw_1.2.3.test_mipsel_24kc.ipk")
	// apk's version grammar has no room for "test": the numbers, -r0.
	apk = filepath.Join(dist, "tcpcrypt-gw_1.2.3-r0_mipsel_24kc.apk")
	for _, f := range []string{deb, ipk, apk, filepath.Join(dist, "SHA256SUMS")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("package.sh did not make %s:\n%s", f, out)
		}
	}
	sums, _ := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if !strings.Contains(string(sums), filepath.Base(apk)) {
		t.Errorf("SHA256SUMS does not cover the .apk:\n%s", sums)
	}
	return deb, ipk, apk
}

func TestPackages(t *testing.T) {
	deb, ipk, apk := buildPackages(t)
	t.Run("deb", func(t *testing.T) { checkDeb(t, deb) })
	t.Run("ipk", func(t *testing.T) { checkIPK(t, ipk) })
	t.Run("apk", func(t *testing.T) { checkAPK(t, apk, ipk) })
	t.Run("luci", func(t *testing.T) { checkLuCIPackages(t, filepath.Dir(ipk)) })
}

// TestPackageVersions: the versions package.sh derives from VERSION for
// dpkg/opkg and for apk. A bare commit that starts with digits once gave
// the .apk the version 570 (from 570f841), above every release's.
func TestPackageVersions(t *testing.T) {
	needTool(t, "bash")
	for version, want := range map[string]string{
		"570f841":         "0.0.0+git.570f841 0.0.0~570f841-r0",
		"570f841-dirty":   "0.0.0+git.570f841.dirty 0.0.0~570f841-r0",
		"1234567":         "0.0.0+git.1234567 0.0.0~1234567-r0",
		"abcdef0":         "0.0.0+git.abcdef0 0.0.0~abcdef0-r0",
		"v1.2.3":          "1.2.3 1.2.3-r0",
		"v1.2-3-gabc1234": "1.2.3.gabc1234 1.2_p3~abc1234-r0",
		testVersion:       "1.2.3.test 1.2.3-r0",
		"dev":             "0.0.0+git.dev 0.0.0-r0",
	} {
		cmd := exec.Command("bash", "scripts/package.sh", "--versions")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "VERSION="+version)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("VERSION=%s: %v\n%s", version, err, out)
		}
		got := strings.TrimSpace(string(out))
		if got != want {
			t.Errorf("VERSION=%s: %q, want %q", version, got, want)
		}
		if f := strings.Fields(got); len(f) != 2 || !apkv3.ValidVersion(f[1]) {
			t.Errorf("VERSION=%s: apk version %q is not apk's grammar", version, got)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// checkDeb inspects the .deb with dpkg-deb, installs it into an empty
// root with dpkg --root (maintainer scripts run without chroot and see
// DPKG_ROOT, so they leave the host alone), runs the installed binary's
// --version, and purges it again.
func checkDeb(t *testing.T, deb string) {
	needTool(t, "dpkg-deb")
	needTool(t, "dpkg")
	for field, want := range map[string]string{"Package": "tcpcrypt-gw", "Version": "1.2.3.test", "Architecture": "amd64", "Section": "net", "Depends": "adduser"} {
		if got := strings.TrimSpace(run(t, "dpkg-deb", "--field", deb, field)); got != want {
			t.Errorf("%s: %q, want %q", field, got, want)
		}
	}
	ctl := t.TempDir()
	run(t, "dpkg-deb", "--control", deb, ctl)
	conffiles, _ := os.ReadFile(filepath.Join(ctl, "conffiles"))
	if strings.TrimSpace(string(conffiles)) != "/etc/tcpcrypt-gw/config.yaml" {
		t.Errorf("conffiles %q", conffiles)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		run(t, "sh", "-n", filepath.Join(ctl, s))
	}

	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644)
	// The empty root has no adduser (a dependency): --force-depends.
	dpkg := []string{"--root=" + root, "--force-not-root", "--force-script-chrootless", "--force-depends", "--log=/dev/null"}
	run(t, "dpkg", append(dpkg, "--install", deb)...)
	if st := run(t, "dpkg", append(dpkg, "--status", "tcpcrypt-gw")...); !strings.Contains(st, "Status: install ok installed") {
		t.Fatalf("after install:\n%s", st)
	}
	bin := filepath.Join(root, "usr/bin/tcpcrypt-gw")
	if v := run(t, bin, "--version"); !strings.HasPrefix(v, "tcpcrypt-gw "+testVersion+" ") {
		t.Errorf("installed binary --version: %q", v)
	}
	unit, err := os.ReadFile(filepath.Join(root, "lib/systemd/system/tcpcrypt-gw.service"))
	if err != nil || !strings.Contains(string(unit), "ExecStart=/usr/bin/tcpcrypt-gw run -c /etc/tcpcrypt-gw/config.yaml") ||
		strings.Contains(string(unit), "/usr/local/bin") {
		t.Errorf("systemd unit (%v):\n%s", err, unit)
	}
	conf := filepath.Join(root, "etc/tcpcrypt-gw/config.yaml")
	if st, err := os.Stat(conf); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("config: %v %v", st, err)
	}
	// The shipped configuration is valid.
	if out, err := exec.Command(bin, "check-config", "-no-interfaces", "-c", conf).CombinedOutput(); err != nil {
		t.Errorf("check-config of the shipped config: %v\n%s", err, out)
	}
	// A changed conffile survives removal (dpkg keeps conffiles until purge).
	os.WriteFile(conf, []byte("interfaces: {lan: [lan9], wan: [wan9]}\n"), 0o640)
	run(t, "dpkg", append(dpkg, "--remove", "tcpcrypt-gw")...)
	if _, err := os.Stat(bin); !os.IsNotExist(err) {
		t.Errorf("binary after remove: %v", err)
	}
	if b, _ := os.ReadFile(conf); !strings.Contains(string(b), "lan9") {
		t.Error("the changed conffile did not survive removal")
	}
	run(t, "dpkg", append(dpkg, "--purge", "tcpcrypt-gw")...)
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Errorf("conffile after purge: %v", err)
	}
}

// tgzFiles reads a tar.gz into name -> (header, content).
type tgzEntry struct {
	hdr  *tar.Header
	data []byte
}

func tgzFiles(t *testing.T, b []byte) map[string]tgzEntry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string]tgzEntry{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[strings.TrimPrefix(h.Name, "./")] = tgzEntry{h, data}
	}
	return files
}

// checkIPK takes the .ipk apart as opkg does (a tar.gz of debian-binary,
// control.tar.gz and data.tar.gz) and checks the control data, the
// conffiles, the file list with modes, the maintainer scripts and the
// binary: a stripped little-endian MIPS ELF within the flash budget.
func checkIPK(t *testing.T, ipk string) {
	b, err := os.ReadFile(ipk)
	if err != nil {
		t.Fatal(err)
	}
	outer := tgzFiles(t, b)
	if string(outer["debian-binary"].data) != "2.0\n" {
		t.Errorf("debian-binary %q", outer["debian-binary"].data)
	}
	control := tgzFiles(t, outer["control.tar.gz"].data)
	fields := map[string]string{}
	for _, line := range strings.Split(string(control["control"].data), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			fields[k] = v
		}
	}
	for k, want := range map[string]string{"Package": "tcpcrypt-gw", "Version": "1.2.3.test", "Architecture": "mipsel_24kc", "Depends": "kmod-tun, nftables", "Section": "net"} {
		if fields[k] != want {
			t.Errorf("control %s: %q, want %q", k, fields[k], want)
		}
	}
	conffiles := strings.Fields(string(control["conffiles"].data))
	sort.Strings(conffiles)
	if !slices.Equal(conffiles, []string{"/etc/config/tcpcrypt-gw", "/etc/tcpcrypt-gw/config.yaml"}) {
		t.Errorf("conffiles %q", conffiles)
	}
	dir := t.TempDir()
	for _, s := range []string{"postinst", "prerm"} {
		e, ok := control[s]
		if !ok {
			t.Errorf("no %s", s)
			continue
		}
		p := filepath.Join(dir, s)
		os.WriteFile(p, e.data, 0o755)
		run(t, "sh", "-n", p)
	}

	data := tgzFiles(t, outer["data.tar.gz"].data)
	want := map[string]os.FileMode{
		"usr/bin/tcpcrypt-gw":               0o755,
		"etc/init.d/tcpcrypt-gw":            0o755,
		"usr/share/tcpcrypt-gw/uci2yaml.sh": 0o644,
		"etc/config/tcpcrypt-gw":            0o600,
		"etc/tcpcrypt-gw/config.yaml":       0o600,
	}
	var regular []string
	for name, e := range data {
		if e.hdr.Typeflag == tar.TypeReg {
			regular = append(regular, name)
		}
	}
	sort.Strings(regular)
	if len(regular) != len(want) {
		t.Errorf("files %q, want exactly %d", regular, len(want))
	}
	for name, mode := range want {
		e, ok := data[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if os.FileMode(e.hdr.Mode).Perm() != mode {
			t.Errorf("%s mode %o, want %o", name, e.hdr.Mode, mode)
		}
	}
	root := repoRoot(t)
	for name, src := range map[string]string{
		"etc/init.d/tcpcrypt-gw":            "deploy/openwrt/files/tcpcrypt-gw.init",
		"usr/share/tcpcrypt-gw/uci2yaml.sh": "deploy/openwrt/files/uci2yaml.sh",
		"etc/config/tcpcrypt-gw":            "deploy/openwrt/files/tcpcrypt-gw.config",
		"etc/tcpcrypt-gw/config.yaml":       "deploy/openwrt/files/config.yaml",
	} {
		orig, _ := os.ReadFile(filepath.Join(root, src))
		if !bytes.Equal(data[name].data, orig) {
			t.Errorf("%s differs from %s", name, src)
		}
	}

	checkMipsleBinary(t, data["usr/bin/tcpcrypt-gw"].data)
}

// checkMipsleBinary checks the packaged binary: a stripped little-endian
// MIPS ELF with its version, within the flash budget.
func checkMipsleBinary(t *testing.T, bin []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("binary: %v", err)
	}
	if f.Machine != elf.EM_MIPS || f.ByteOrder.String() != "LittleEndian" || f.Class != elf.ELFCLASS32 {
		t.Errorf("binary is %v %v %v, want 32-bit little-endian MIPS", f.Class, f.ByteOrder, f.Machine)
	}
	if f.Section(".symtab") != nil {
		t.Error("binary not stripped (has .symtab)")
	}
	if !bytes.Contains(bin, []byte(testVersion)) {
		t.Errorf("binary does not hold its version %q", testVersion)
	}
	t.Logf("mipsle binary: %d bytes (budget %d)", len(bin), mipsleMax)
	if len(bin) > mipsleMax {
		t.Errorf("mipsle binary %d bytes, more than the %d-byte budget (docs/deploy.md, Flash)", len(bin), mipsleMax)
	}
}
