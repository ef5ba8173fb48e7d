package apkv3

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"

	"tcpcrypt-gw/deploy/adbread"
)

func testPackage() *Package {
	return &Package{
		Name: "tcpcrypt-gw", Version: "1.2.3_p4~0a1b2c3-r0", Arch: "mipsel_24kc",
		Description: "a gateway", Maintainer: "m <m@x>", URL: "https://example.org/",
		License: "MIT", Origin: "tcpcrypt-gw",
		BuildTime: 1700000000,
		Depends:   []string{"nftables", "kmod-tun", "nftables"},
		Scripts:   map[string][]byte{"post-install": []byte("#!/bin/sh\necho in\n"), "pre-deinstall": []byte("#!/bin/sh\necho out\n")},
		Files: []File{
			{Path: "/usr/bin/tcpcrypt-gw", Mode: 0o755, Data: bytes.Repeat([]byte("binary"), 70000)}, // blob32-sized
			{Path: "/etc/init.d/tcpcrypt-gw", Mode: 0o755, Data: []byte("#!/bin/sh /etc/rc.common\n")},
			{Path: "/etc/config/tcpcrypt-gw", Mode: 0o600, Data: []byte("config tcpcrypt-gw 'main'\n")},
			{Path: "/etc/tcpcrypt-gw/config.yaml", Mode: 0o600, Data: []byte("interfaces: {}\n")},
			{Path: "/etc/tcpcrypt-gw/empty", Mode: 0o644},
		},
		Conffiles: []string{"/etc/config/tcpcrypt-gw", "/etc/tcpcrypt-gw/config.yaml"},
	}
}

// TestRoundTrip writes a package and reads it back with the independent
// reader (deploy/adbread).
func TestRoundTrip(t *testing.T) {
	p := testPackage()
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	r, err := adbread.Read(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != p.Name || r.Version != p.Version || r.Arch != p.Arch || r.Description != p.Description ||
		r.Maintainer != p.Maintainer || r.URL != p.URL || r.License != p.License || r.Origin != p.Origin ||
		r.BuildTime != 1700000000 || r.Compression != "deflate" || r.SigBlocks != 0 {
		t.Errorf("info: %+v", r)
	}
	if !slices.Equal(r.Depends, []string{"kmod-tun", "nftables"}) {
		t.Errorf("depends %q: sorted, once each", r.Depends)
	}
	if !r.UniqueIDOK || len(r.UniqueID) != 20 {
		t.Errorf("unique id %x (ok %v)", r.UniqueID, r.UniqueIDOK)
	}
	if len(r.Scripts) != 2 || r.Scripts["post-install"] != "#!/bin/sh\necho in\n" || r.Scripts["pre-deinstall"] != "#!/bin/sh\necho out\n" {
		t.Errorf("scripts %q", r.Scripts)
	}
	files := r.Files()
	var installed uint64
	for _, f := range p.Files {
		g := files[f.Path]
		if g == nil {
			t.Errorf("%s missing", f.Path)
			continue
		}
		if g.Mode != f.Mode || !bytes.Equal(g.Data, f.Data) || g.User != "root" || g.Group != "root" || g.MTime != 1700000000 {
			t.Errorf("%s: mode %o owner %s:%s mtime %d, %d bytes", f.Path, g.Mode, g.User, g.Group, g.MTime, len(g.Data))
		}
		installed += uint64(len(f.Data))
	}
	// OpenWrt's lists of conffiles (with SHA-256) and files.
	conf := files["/lib/apk/packages/tcpcrypt-gw.conffiles"]
	static := files["/lib/apk/packages/tcpcrypt-gw.conffiles_static"]
	list := files["/lib/apk/packages/tcpcrypt-gw.list"]
	if conf == nil || static == nil || list == nil {
		t.Fatalf("OpenWrt's /lib/apk/packages files missing: %v", files)
	}
	if string(conf.Data) != "/etc/config/tcpcrypt-gw\n/etc/tcpcrypt-gw/config.yaml\n" {
		t.Errorf("conffiles %q", conf.Data)
	}
	wantStatic := fmt.Sprintf("/etc/config/tcpcrypt-gw %x\n/etc/tcpcrypt-gw/config.yaml %x\n",
		sha256.Sum256(p.Files[2].Data), sha256.Sum256(p.Files[3].Data))
	if string(static.Data) != wantStatic {
		t.Errorf("conffiles_static %q, want %q", static.Data, wantStatic)
	}
	if got := strings.Fields(string(list.Data)); len(got) != len(p.Files) || !slices.IsSorted(got) {
		t.Errorf(".list %q", got)
	}
	installed += uint64(len(conf.Data) + len(static.Data) + len(list.Data))
	if r.InstalledSize != installed {
		t.Errorf("installed size %d, want %d", r.InstalledSize, installed)
	}
	// Every ancestor directory is there, 0755 root:root.
	var dirs []string
	for _, e := range r.Entries {
		if e.Dir {
			dirs = append(dirs, e.Path)
			if e.Mode != 0o755 || e.User != "root" {
				t.Errorf("%s: %o %s", e.Path, e.Mode, e.User)
			}
		}
	}
	want := []string{"/", "/etc", "/etc/config", "/etc/init.d", "/etc/tcpcrypt-gw", "/lib", "/lib/apk", "/lib/apk/packages", "/usr", "/usr/bin"}
	if !slices.Equal(dirs, want) {
		t.Errorf("directories %q, want %q", dirs, want)
	}
	// The same input gives the same bytes.
	var again bytes.Buffer
	if err := testPackage().Write(&again); err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Errorf("not reproducible (%v)", err)
	}
}

func TestWriteRejects(t *testing.T) {
	for name, c := range map[string]struct {
		change func(*Package)
		want   string
	}{
		"dpkg version":    {func(p *Package) { p.Version = "0.0.0+git.abc" }, "not an apk version"},
		"name":            {func(p *Package) { p.Name = "-x" }, "package name"},
		"no arch":         {func(p *Package) { p.Arch = "" }, "architecture"},
		"relative path":   {func(p *Package) { p.Files[0].Path = "usr/bin/x" }, "clean absolute"},
		"twice":           {func(p *Package) { p.Files[1].Path = p.Files[0].Path }, "twice"},
		"script kind":     {func(p *Package) { p.Scripts["postinst"] = nil }, "unknown script"},
		"conffile":        {func(p *Package) { p.Conffiles = []string{"/etc/nope"} }, "not among the files"},
		"dependency":      {func(p *Package) { p.Depends = []string{"a>1"} }, "dependency"},
		"multi-line desc": {func(p *Package) { p.Description = "a\nb" }, "one line"},
	} {
		p := testPackage()
		c.change(p)
		var buf bytes.Buffer
		if err := p.Write(&buf); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}

func TestValidVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"1.2.3-r0": true, "0.0.0~03b17b4-r0": true, "1.2.3_p5~abc-r1": true, "1.0a_rc1": true, "2024.01.01": true,
		"1.2.3.test": false, "v1.2": false, "1.2-3": false, "": false, "1.2~XYZ": false,
	} {
		if ValidVersion(v) != ok {
			t.Errorf("ValidVersion(%q) = %v", v, !ok)
		}
	}
}
