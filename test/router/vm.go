// Package router boots a router-class virtual machine: 32-bit ARM under
// qemu-system-arm (-M virt, TCG emulation), 128 MB of memory and one CPU,
// Debian's armmp kernel and a root made of busybox-static and the gateway's
// static linux/arm binary, loaded as an initramfs. Its two virtio NICs are
// tap devices inside a network namespace of the test, so the VM is a router
// between namespaces. The test drives it over the serial console.
//
// The flow of Boot:
//  1. Unpack the kernel and busybox from Debian's packages for the
//     architecture (test/router/deps.sh downloads them; see DebDir).
//  2. Collect the kernel modules the VM needs (virtio transport, virtio_net,
//     tun, virtio-rng; nf_tables and nft_ct for the gateway's conntrack
//     bypass) and everything they depend on, in load order, read from
//     each module's .modinfo section (the package has no modules.dep: depmod
//     runs at install time).
//  3. Write a gzip'd newc cpio: busybox, /init, the modules, /dev/console,
//     and the extra files (the gateway binary and whatever the caller adds).
//  4. Create the two taps in the namespace and start qemu there (`ip netns
//     exec`), with the console on qemu's standard input and output.
//  5. Wait (bounded) for /init's ready line; from then on Run sends a
//     command and waits for its end marker.
//
// /init loads the modules, names the NICs by their MAC address (wan0 and
// lan0: virtio-mmio probes them in no fixed order), turns IPv6 duplicate
// address detection off (the namespaces have it off too) and gives the
// console a shell without echo or prompt.
package router

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"tcpcrypt-gw/test/netns"
)

// Arch describes one emulated router.
type Arch struct {
	Name        string // "arm"
	Qemu        string // qemu-system-arm
	Machine     []string
	Console     string // the kernel's console device
	NIC         string // the qemu device model of a NIC
	RNG         string // the qemu device model of the entropy source
	KernelGlob  string // the kernel package in the deb directory
	BusyboxGlob string
	GOARCH      string
	GOENV       []string // GOARM and the like
	PkgTarget   string   // scripts/package.sh's os/arch[/variant]
	Modules     []string // what /init loads (dependencies are added)
	InitSetup   string   // shell lines /init runs before it loads them
}

// ARM is a 32-bit ARMv7 router (Cortex-A15: no AES instructions, like the
// Cortex-A7/A9 of home routers).
var ARM = Arch{
	Name:        "arm",
	Qemu:        "qemu-system-arm",
	Machine:     []string{"-M", "virt,highmem=off", "-cpu", "cortex-a15"},
	Console:     "ttyAMA0",
	NIC:         "virtio-net-device",
	RNG:         "virtio-rng-device",
	KernelGlob:  "linux-image-*-armmp_*_armhf.deb",
	BusyboxGlob: "busybox-static_*_armhf.deb",
	GOARCH:      "arm",
	GOENV:       []string{"GOARM=7"},
	PkgTarget:   "linux/arm/7",
	Modules:     []string{"virtio_mmio", "virtio_net", "tun", "virtio_rng", "nf_tables", "nft_ct"},
}

// MIPSLE is a 32-bit little-endian MIPS router (the Malta board with a
// 24Kc: MIPS32r2 without an FPU, like the MT7621's 1004Kc), with Debian's
// 4kc-malta kernel and the softfloat build of scripts/release.sh.
var MIPSLE = Arch{
	Name:        "mipsle",
	Qemu:        "qemu-system-mipsel",
	Machine:     []string{"-M", "malta", "-cpu", "24Kc"},
	Console:     "ttyS0",
	NIC:         "virtio-net-pci,romfile=", // no option ROM: no firmware boots from it
	RNG:         "virtio-rng-pci",
	KernelGlob:  "linux-image-*-4kc-malta_*_mipsel.deb",
	BusyboxGlob: "busybox-static_*_mipsel.deb",
	GOARCH:      "mipsle",
	GOENV:       []string{"GOMIPS=softfloat"},
	PkgTarget:   "linux/mipsle/softfloat",
	Modules:     []string{"virtio_pci", "virtio_net", "tun", "virtio_rng", "nf_tables", "nft_ct"},
	// The PCI interrupts level-triggered, as the Malta's firmware (YAMON)
	// sets them: Linux leaves the PIIX4's ELCR (I/O ports 0x4d0, 0x4d1) as
	// it finds it, and under qemu's -kernel it finds 0 (every IRQ
	// edge-triggered). qemu routes the PCI slots' interrupts to IRQ 10 and
	// 11, and the two NICs share IRQ 10: with edge triggering, one NIC
	// raising its line while the other still held it high made no edge,
	// the interrupt was lost and never came again (the NIC's ISR stayed
	// 1, the kernel's count for IRQ 10 stopped, the WAN NIC received
	// nothing more, with free receive buffers). 0x0c in ELCR2 makes IRQ 10
	// and 11 level-triggered; /init checks it took.
	InitSetup: `printf '\014' | dd of=/dev/port bs=1 seek=$((0x4d1)) count=1 2>/dev/null
[ "$(dd if=/dev/port bs=1 skip=$((0x4d1)) count=1 2>/dev/null | od -An -tx1 | tr -d ' ')" = 0c ] || echo "` + initFailed + ` ELCR: IRQ 10 and 11 are not level-triggered"`,
}

// Memory and CPUs of the VM: a small home router.
const (
	MemoryMB = 128
	CPUs     = 1
)

// MACs of the two NICs; /init names them by these.
const (
	wanMAC = "52:54:00:7c:00:01"
	lanMAC = "52:54:00:7c:00:02"
)

// DebDir is where test/router/deps.sh puts the Debian packages:
// TCPCRYPT_ROUTER_DEBS, or bin/router-vm at the top of the repository.
func DebDir() string {
	if d := os.Getenv("TCPCRYPT_ROUTER_DEBS"); d != "" {
		return d
	}
	return filepath.Join(repoRoot(), "bin", "router-vm")
}

// repoRoot is the directory of go.mod above the working directory (the
// working directory when there is none).
func repoRoot() string {
	wd, _ := os.Getwd()
	for d := wd; d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return wd
}

// Missing says what of arch's prerequisites is not there ("" when all is).
func Missing(a Arch, debDir string) string {
	var miss []string
	if _, err := exec.LookPath(a.Qemu); err != nil {
		miss = append(miss, a.Qemu)
	}
	for _, g := range []string{a.KernelGlob, a.BusyboxGlob} {
		if m, _ := filepath.Glob(filepath.Join(debDir, g)); len(m) == 0 {
			miss = append(miss, filepath.Join(debDir, g))
		}
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		miss = append(miss, "dpkg-deb")
	}
	return strings.Join(miss, ", ")
}

// File is an extra file of the VM's root.
type File struct {
	Path string // absolute, inside the VM
	Src  string // a file on the host
	Mode os.FileMode
}

// Image is an unpacked kernel and a built initramfs.
type Image struct {
	Kernel, Initrd string
	Modules        []string // load order
}

// BuildImage unpacks arch's packages from debDir into work and writes the
// initramfs with files added.
func BuildImage(ctx context.Context, a Arch, debDir, work string, files []File) (*Image, error) {
	// 1. Unpack.
	unpack := func(glob, sub string) (string, error) {
		m, _ := filepath.Glob(filepath.Join(debDir, glob))
		if len(m) == 0 {
			return "", fmt.Errorf("router: no %s in %s (run make deps)", glob, debDir)
		}
		sort.Strings(m)
		dst := filepath.Join(work, sub)
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", m[len(m)-1], dst).CombinedOutput(); err != nil {
			return "", fmt.Errorf("router: dpkg-deb -x %s: %v: %s", m[len(m)-1], err, bytes.TrimSpace(out))
		}
		return dst, nil
	}
	kdir, err := unpack(a.KernelGlob, "kernel")
	if err != nil {
		return nil, err
	}
	bdir, err := unpack(a.BusyboxGlob, "busybox")
	if err != nil {
		return nil, err
	}
	kernels, _ := filepath.Glob(filepath.Join(kdir, "boot", "vmlinuz-*"))
	mods, _ := filepath.Glob(filepath.Join(kdir, "lib", "modules", "*"))
	if len(kernels) != 1 || len(mods) != 1 {
		return nil, fmt.Errorf("router: want one kernel and one module tree in %s, found %v and %v", kdir, kernels, mods)
	}
	img := &Image{Kernel: kernels[0], Initrd: filepath.Join(work, "initrd.gz")}

	// 2. Modules in load order.
	order, err := moduleOrder(mods[0], a.Modules)
	if err != nil {
		return nil, err
	}

	// 3. The cpio.
	w := newCPIO()
	for _, d := range []string{"/bin", "/sbin", "/usr", "/usr/bin", "/usr/sbin", "/etc", "/proc", "/sys", "/dev", "/tmp", "/run", "/var", "/var/run", "/lib", "/lib/modules", "/root"} {
		w.dir(d)
	}
	w.dev("/dev/console", 5, 1)
	w.dev("/dev/null", 1, 3)
	bb, err := os.ReadFile(filepath.Join(bdir, "bin", "busybox"))
	if err != nil {
		return nil, fmt.Errorf("router: busybox: %w", err)
	}
	w.file("/bin/busybox", bb, 0o755)
	var load []string
	for _, m := range order {
		b, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		name := filepath.Base(m)
		w.file("/lib/modules/"+name, b, 0o644)
		load = append(load, name)
		img.Modules = append(img.Modules, strings.TrimSuffix(name, ".ko"))
	}
	w.file("/init", []byte(initScript(a, load)), 0o755)
	for _, f := range files {
		b, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, fmt.Errorf("router: %s: %w", f.Path, err)
		}
		w.dirs(filepath.Dir(f.Path))
		w.file(f.Path, b, f.Mode)
	}
	if err := w.writeGzip(img.Initrd); err != nil {
		return nil, err
	}
	return img, nil
}

// readyLine is what /init prints once the shell takes the console.
const readyLine = "ROUTERVM-READY"

// initFailed starts what /init prints when a step the VM needs failed;
// Boot fails on it.
const initFailed = "init: FAILED"

// shellExited is what /init prints when the console's shell ends; it
// starts another (the shell is init's child: init must not exit).
const shellExited = "init: the console shell exited"

func initScript(a Arch, modules []string) string {
	return fmt.Sprintf(`#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/net /dev/pts
[ -e /dev/net/tun ] || mknod /dev/net/tun c 10 200
%s
for m in %s; do insmod /lib/modules/$m || echo "init: insmod $m failed"; done
echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad
echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad
for d in /sys/class/net/*; do
  case "$(cat $d/address)" in
  %s) ip link set "${d##*/}" name wan0 ;;
  %s) ip link set "${d##*/}" name lan0 ;;
  esac
done
ip link set lo up
echo 1 > /proc/sys/kernel/printk
stty -echo
export PS1= PS2=
echo "%s $(cat /proc/sys/kernel/random/entropy_avail)"
while :; do sh; echo "%s ($?)"; done
`, a.InitSetup, strings.Join(modules, " "), wanMAC, lanMAC, readyLine, shellExited)
}

// moduleOrder finds each wanted module in the tree (a missing one is an
// error unless the kernel has it built in) and returns the files with their
// dependencies first.
func moduleOrder(tree string, want []string) ([]string, error) {
	norm := func(s string) string { return strings.ReplaceAll(s, "-", "_") }
	files := map[string]string{}
	err := filepath.WalkDir(tree, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".ko") {
			files[norm(strings.TrimSuffix(d.Name(), ".ko"))] = p
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	builtin, _ := os.ReadFile(filepath.Join(tree, "modules.builtin"))
	var order []string
	seen := map[string]bool{}
	var visit func(name string, depth int) error
	visit = func(name string, depth int) error {
		name, soft := strings.CutPrefix(norm(name), "softdep:")
		if seen[name] {
			return nil
		}
		seen[name] = true
		if depth > 32 {
			return fmt.Errorf("router: module dependencies of %s too deep", name)
		}
		p, ok := files[name]
		if !ok && soft {
			p, ok = byAlias(files, name)
		}
		if !ok {
			if soft || bytes.Contains(bytes.ReplaceAll(builtin, []byte("-"), []byte("_")), []byte("/"+name+".ko")) {
				return nil // built in, or a soft dependency the kernel does without
			}
			return fmt.Errorf("router: kernel module %s not in %s", name, tree)
		}
		deps, err := moduleDeps(p)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, depth+1); err != nil {
				return err
			}
		}
		order = append(order, p)
		return nil
	}
	for _, m := range want {
		if err := visit(m, 0); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// byAlias finds the module that declares alias name (a soft dependency
// names a crypto algorithm, "crc32c", which crc32c_generic provides).
func byAlias(files map[string]string, name string) (string, bool) {
	var cands []string
	for _, p := range files {
		info, err := modinfo(p)
		if err != nil {
			continue
		}
		for _, kv := range info {
			if a, ok := bytes.CutPrefix(kv, []byte("alias=")); ok && string(a) == name {
				cands = append(cands, p)
			}
		}
	}
	// The generic implementation runs on every CPU (crc32-arm-ce needs
	// the ARMv8 CRC instructions).
	sort.Slice(cands, func(i, j int) bool {
		gi, gj := strings.Contains(cands[i], "_generic"), strings.Contains(cands[j], "_generic")
		if gi != gj {
			return gi
		}
		return cands[i] < cands[j]
	})
	if len(cands) == 0 {
		return "", false
	}
	return cands[0], true
}

// modinfo is the key=value list of a module's .modinfo section.
func modinfo(path string) ([][]byte, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("router: %s: %w", path, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("router: %s has no .modinfo", path)
	}
	b, err := s.Data()
	if err != nil {
		return nil, err
	}
	return bytes.Split(b, []byte{0}), nil
}

// moduleDeps reads the depends= and softdep= pre: entries of a module's
// .modinfo section.
func moduleDeps(path string) ([]string, error) {
	info, err := modinfo(path)
	if err != nil {
		return nil, err
	}
	var deps []string
	for _, kv := range info {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok && len(v) > 0 {
			deps = append(deps, strings.Split(string(v), ",")...)
		}
		// "softdep=pre: crc32c": modprobe loads these first
		// (libcrc32c needs a crc32c implementation).
		if v, ok := bytes.CutPrefix(kv, []byte("softdep=")); ok {
			pre := false
			for _, f := range strings.Fields(string(v)) {
				switch f {
				case "pre:":
					pre = true
				case "post:":
					pre = false
				default:
					if pre {
						deps = append(deps, "softdep:"+f)
					}
				}
			}
		}
	}
	return deps, nil
}

// cpio writes the newc format the kernel unpacks into its root.
type cpio struct {
	buf  bytes.Buffer
	ino  int
	have map[string]bool
}

func newCPIO() *cpio { return &cpio{ino: 1, have: map[string]bool{}} }

func (c *cpio) entry(name string, mode uint32, rdevMajor, rdevMinor int, data []byte) {
	c.ino++
	name = strings.TrimPrefix(name, "/")
	fmt.Fprintf(&c.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.buf.WriteString(name)
	c.buf.WriteByte(0)
	c.pad()
	c.buf.Write(data)
	c.pad()
}

func (c *cpio) pad() {
	for c.buf.Len()%4 != 0 {
		c.buf.WriteByte(0)
	}
}

func (c *cpio) dir(p string) {
	if !c.have[p] {
		c.have[p] = true
		c.entry(p, 0o040755, 0, 0, nil)
	}
}

// dirs adds p and its parents.
func (c *cpio) dirs(p string) {
	if p == "/" || p == "." {
		return
	}
	c.dirs(filepath.Dir(p))
	c.dir(p)
}

func (c *cpio) file(p string, data []byte, mode os.FileMode) {
	c.entry(p, 0o100000|uint32(mode.Perm()), 0, 0, data)
}

func (c *cpio) dev(p string, major, minor int) {
	c.entry(p, 0o020600, major, minor, nil)
}

func (c *cpio) writeGzip(path string) error {
	c.entry("TRAILER!!!", 0, 0, 0, nil)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if _, err := zw.Write(c.buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// VM is a running router VM.
type VM struct {
	NS       *netns.NS // where qemu and its taps are
	WANTap   string
	LANTap   string
	BootTime time.Duration // from qemu's start to the ready line

	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex
	out     []byte // what the console printed, the last maxConsole bytes
	dropped int    // bytes of console output dropped before out
	changed chan struct{}
	done    chan struct{}
	waitErr error
	log     *os.File
	seq     int
}

// Boot creates the taps wanTap and lanTap in ns, starts the VM there and
// waits (at most bootLimit) for its shell. The console is also copied to
// logPath. The caller must Close the VM (also after an error from later
// steps; Boot itself cleans up after its own errors).
func Boot(a Arch, img *Image, ns *netns.NS, wanTap, lanTap, logPath string, bootLimit time.Duration) (*VM, error) {
	for _, tap := range []string{wanTap, lanTap} {
		if _, err := ns.Run(context.Background(), "ip", "tuntap", "add", "dev", tap, "mode", "tap"); err != nil {
			return nil, err
		}
		if err := ns.Link("set", tap, "up"); err != nil {
			return nil, err
		}
	}
	args := append([]string{"netns", "exec", ns.Name, a.Qemu}, a.Machine...)
	args = append(args,
		"-m", strconv.Itoa(MemoryMB), "-smp", strconv.Itoa(CPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
		"-serial", "stdio", "-no-reboot",
		"-kernel", img.Kernel, "-initrd", img.Initrd,
		"-append", "console="+a.Console+" panic=-1 quiet",
		"-netdev", "tap,id=wan,ifname="+wanTap+",script=no,downscript=no",
		"-device", a.NIC+",netdev=wan,mac="+wanMAC,
		"-netdev", "tap,id=lan,ifname="+lanTap+",script=no,downscript=no",
		"-device", a.NIC+",netdev=lan,mac="+lanMAC,
		"-object", "rng-random,filename=/dev/urandom,id=rng0",
		"-device", a.RNG+",rng=rng0")
	v := &VM{NS: ns, WANTap: wanTap, LANTap: lanTap, changed: make(chan struct{}, 1), done: make(chan struct{})}
	v.cmd = exec.Command("ip", args...)
	var err error
	if v.stdin, err = v.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := v.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	v.cmd.Stderr = v.cmd.Stdout
	if logPath != "" {
		if v.log, err = os.Create(logPath); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	if err := v.cmd.Start(); err != nil {
		return nil, fmt.Errorf("router: start %s: %w", a.Qemu, err)
	}
	go func() {
		r := bufio.NewReader(stdout)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				b := bytes.ReplaceAll(buf[:n], []byte("\r"), nil)
				v.mu.Lock()
				v.out = append(v.out, b...)
				if len(v.out) > maxConsole {
					cut := len(v.out) - maxConsole/2
					v.out = append(v.out[:0], v.out[cut:]...)
					v.dropped += cut
				}
				if v.log != nil {
					v.log.Write(b)
				}
				v.mu.Unlock()
				select {
				case v.changed <- struct{}{}:
				default:
				}
			}
			if err != nil {
				break
			}
		}
		v.waitErr = v.cmd.Wait()
		close(v.done)
	}()
	if _, err := v.waitFor(0, regexp.MustCompile(readyLine+` \d+`), bootLimit); err != nil {
		v.Close()
		return nil, fmt.Errorf("router: boot: %w", err)
	}
	v.BootTime = time.Since(start)
	if c := v.Console(); strings.Contains(c, initFailed) {
		v.Close()
		return nil, fmt.Errorf("router: boot: %s", tail(c[strings.Index(c, initFailed):], 400))
	}
	return v, nil
}

// maxConsole bounds the console output kept (the log file has it all).
const maxConsole = 4 << 20

// Pid is qemu's process ID (ip netns exec runs it in place).
func (v *VM) Pid() int { return v.cmd.Process.Pid }

// Console is what the console printed so far (at most the last 4 MiB).
func (v *VM) Console() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return string(v.out)
}

// since is the console output from the absolute offset from on, and the
// absolute offset where it starts.
func (v *VM) since(from int) (string, int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	rel := min(max(from-v.dropped, 0), len(v.out))
	return string(v.out[rel:]), v.dropped + rel
}

// waitFor waits until the console output from the absolute offset from on
// matches re and returns the match's submatches and the absolute offset of
// its start.
func (v *VM) waitFor(from int, re *regexp.Regexp, limit time.Duration) ([]string, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		s, at := v.since(from)
		if m := re.FindStringSubmatchIndex(s); m != nil {
			res := make([]string, 0, len(m)/2+1)
			for i := 0; i < len(m); i += 2 {
				if m[i] < 0 {
					res = append(res, "")
				} else {
					res = append(res, s[m[i]:m[i+1]])
				}
			}
			return append(res, strconv.Itoa(at+m[0])), nil
		}
		select {
		case <-v.changed:
		case <-v.done:
			return nil, fmt.Errorf("qemu exited (%v); console:\n%s", v.waitErr, tail(s, 4000))
		case <-deadline.C:
			return nil, fmt.Errorf("no %q after %v; console:\n%s", re, limit, tail(s, 4000))
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Run runs a shell command line in the VM and returns its output; an exit
// status other than 0, or no end within limit, is an error.
func (v *VM) Run(cmdline string, limit time.Duration) (string, error) {
	v.mu.Lock()
	v.seq++
	n := v.seq
	from := v.dropped + len(v.out)
	v.mu.Unlock()
	// The marker is split by quotes in what is typed, so that only the
	// output of echo matches it.
	if _, err := fmt.Fprintf(v.stdin, "%s\necho \"@@EN\"\"D-%d $?@@\"\n", cmdline, n); err != nil {
		return "", fmt.Errorf("router: console: %w", err)
	}
	m, err := v.waitFor(from, regexp.MustCompile(fmt.Sprintf(`@@END-%d (\d+)@@\n`, n)), limit)
	if err != nil {
		return "", fmt.Errorf("router: %q: %w", cmdline, err)
	}
	at, _ := strconv.Atoi(m[2])
	out, start := v.since(from)
	out = out[:max(0, min(len(out), at-start))]
	if m[1] != "0" {
		return out, fmt.Errorf("router: %q exited %s: %s", cmdline, m[1], strings.TrimSpace(out))
	}
	return out, nil
}

// WriteFile writes content to path inside the VM (a here-document).
func (v *VM) WriteFile(path, content string) error {
	if strings.Contains(content, "\nROUTERVM_EOF\n") {
		return errors.New("router: content holds the here-document's end")
	}
	if !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	_, err := v.Run("mkdir -p "+filepath.Dir(path)+" && cat > "+path+" <<'ROUTERVM_EOF'\n"+content+"ROUTERVM_EOF", 30*time.Second)
	return err
}

// Close stops qemu (SIGTERM, then SIGKILL after 5s) and waits for it.
func (v *VM) Close() error {
	select {
	case <-v.done:
	default:
		if v.cmd.Process != nil {
			v.cmd.Process.Signal(os.Interrupt)
			select {
			case <-v.done:
			case <-time.After(5 * time.Second):
				v.cmd.Process.Kill()
				<-v.done
			}
		}
	}
	v.stdin.Close()
	if v.log != nil {
		v.mu.Lock()
		v.log.Close()
		v.log = nil
		v.mu.Unlock()
	}
	return nil
}
