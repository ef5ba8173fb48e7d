package adbread

import (
	"bytes"
	"compress/flate"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
)

// testdata/mkpkg-ref.apk was written by apk-tools' own `apk mkpkg` (commit
// 90b974fd, built by hand outside this repository, --xattrs=no) from:
// /usr/bin/ref (0755, "#!/bin/sh\necho ref\n"), /etc/config/ref (0600),
// /etc/empty (0644, empty), depends "nftables kmod-tun", a post-install
// script. Reading it shows the reader follows apk's encoding, not only
// the writer's.
func TestReadApkToolsPackage(t *testing.T) {
	p, err := ReadFile("testdata/mkpkg-ref.apk")
	if err != nil {
		t.Fatal(err)
	}
	if p.Compression != "deflate" || p.Name != "ref" || p.Version != "1.0-r2" || p.Arch != "x86_64" || p.Description != "reference package" {
		t.Errorf("info: %+v", p)
	}
	if !slices.Equal(p.Depends, []string{"kmod-tun", "nftables"}) {
		t.Errorf("depends %q (apk sorts them)", p.Depends)
	}
	if !p.UniqueIDOK || len(p.UniqueID) != 20 {
		t.Errorf("unique id %x ok=%v", p.UniqueID, p.UniqueIDOK)
	}
	if p.Scripts["post-install"] != "#!/bin/sh\nexit 0\n" || len(p.Scripts) != 1 {
		t.Errorf("scripts %q", p.Scripts)
	}
	files := p.Files()
	for path, want := range map[string]struct {
		mode os.FileMode
		data string
	}{
		"/usr/bin/ref":    {0o755, "#!/bin/sh\necho ref\n"},
		"/etc/config/ref": {0o600, "config ref 'main'\n"},
		"/etc/empty":      {0o644, ""},
	} {
		f := files[path]
		if f == nil {
			t.Errorf("%s missing", path)
			continue
		}
		if f.Mode != want.mode || string(f.Data) != want.data || f.User != "root" || f.Group != "root" {
			t.Errorf("%s: mode %o %s:%s %q", path, f.Mode, f.User, f.Group, f.Data)
		}
	}
	if len(files) != 3 {
		t.Errorf("%d files", len(files))
	}
}

// inflated returns the package without its compression, and a
// function that compresses a changed copy back.
func inflated(t *testing.T) ([]byte, func([]byte) []byte) {
	b, err := os.ReadFile("testdata/mkpkg-ref.apk")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(b[4:])))
	if err != nil {
		t.Fatal(err)
	}
	return raw, func(r []byte) []byte {
		var out bytes.Buffer
		out.WriteString("ADBd")
		zw, _ := flate.NewWriter(&out, 5)
		zw.Write(r)
		zw.Close()
		return out.Bytes()
	}
}

func TestReadRejects(t *testing.T) {
	raw, pack := inflated(t)
	// Uncompressed ("ADB." first) reads the same.
	if _, err := Read(raw); err != nil {
		t.Fatalf("uncompressed: %v", err)
	}
	i := bytes.Index(raw, []byte("echo ref"))
	if i < 0 {
		t.Fatal("file data not found")
	}
	for name, c := range map[string]struct {
		change func([]byte) []byte
		want   string
	}{
		"file data changed": {func(r []byte) []byte { r[i] = 'E'; return r }, "SHA-256"},
		"schema":            {func(r []byte) []byte { copy(r[4:], "indx"); return r }, "schema"},
		"truncated":         {func(r []byte) []byte { return r[:len(r)-9] }, "block"},
		"no magic":          {func(r []byte) []byte { copy(r, "XYZ."); return r }, "ADB"},
	} {
		r := c.change(bytes.Clone(raw))
		if _, err := Read(pack(r)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %q", name, err, c.want)
		}
	}
}

// FuzzRead: any input gives a package or an error, never a panic.
func FuzzRead(f *testing.F) {
	b, err := os.ReadFile("testdata/mkpkg-ref.apk")
	if err != nil {
		f.Fatal(err)
	}
	raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(b[4:])))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Add([]byte("ADB.pckg"))
	f.Fuzz(func(t *testing.T, data []byte) {
		Read(data)
	})
}
