// Package apkv3 writes packages in the format of apk-tools 3 (the "ADB"
// container, doc/apk-v3.5 and doc/apk-package.5 of apk-tools), which
// OpenWrt 25 installs with `apk add`. It writes what `apk mkpkg` writes for
// one package, from the description in apk-tools' documentation and
// headers (src/adb.h, src/apk_adb.h); no apk-tools code is used.
//
// The flow of Write:
//  1. The metadata tree (schema "pckg"): package info, the directories
//     with their files (names, modes, sizes, SHA-256), the scripts. Every
//     value is a 32-bit tag (4 bits of type, 28 of value or offset) in one
//     ADB block; arrays of directories, files and dependencies are sorted as
//     apk sorts them (byte order of the name).
//  2. The package's unique id (pkginfo "hashes", 20 bytes) is the start of
//     the SHA-256 of that ADB block, taken with the id zeroed, as mkpkg does.
//  3. The file: "ADB." and the schema, the ADB block, no signature block
//     (OpenWrt 25 signs the index, not each package), then one DATA block
//     per non-empty regular file (its path and file index, then its
//     bytes), each block padded to 8 bytes; all of it deflated behind
//     "ADBd".
package apkv3

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Value tags (adb.h).
const (
	typeInt    = 0x10000000
	typeInt32  = 0x20000000
	typeInt64  = 0x30000000
	typeBlob8  = 0x80000000
	typeBlob16 = 0x90000000
	typeBlob32 = 0xa0000000
	typeArray  = 0xd0000000
	typeObject = 0xe0000000
	valueMask  = 0x0fffffff
)

// Blocks and schema (adb.h, apk_adb.h).
const (
	blockADB      = 0
	blockData     = 2
	schemaPackage = 0x676b6370 // "pckg"
	maxBlock      = 0x3fffffff - 4
)

// Field numbers of the package schema (apk_adb.h).
const (
	piName          = 1
	piVersion       = 2
	piHashes        = 3
	piDescription   = 4
	piArch          = 5
	piLicense       = 6
	piOrigin        = 7
	piMaintainer    = 8
	piURL           = 9
	piBuildTime     = 11
	piInstalledSize = 12
	piDepends       = 15
	piMax           = 22

	aclMode  = 1
	aclUser  = 2
	aclGroup = 3

	fiName   = 1
	fiACL    = 2
	fiSize   = 3
	fiMtime  = 4
	fiHashes = 5

	diName  = 1
	diACL   = 2
	diFiles = 3

	pkgInfo    = 1
	pkgPaths   = 2
	pkgScripts = 3

	depName = 1
)

// Scripts are the script kinds apk runs, in the order of their fields.
var Scripts = []string{"trigger", "pre-install", "post-install", "pre-deinstall", "post-deinstall", "pre-upgrade", "post-upgrade"}

// uidLen is the length of the package's unique id (a SHA-1's length, as
// apk mkpkg writes it).
const uidLen = 20

// File is one regular file of a package.
type File struct {
	Path string      // absolute, e.g. /usr/bin/tcpcrypt-gw
	Mode fs.FileMode // permission bits
	Data []byte
}

// Package is what a package holds. Directories are derived from the
// files' paths (0755, root:root).
type Package struct {
	Name, Version, Description, Arch string
	License, Origin, Maintainer, URL string
	BuildTime                        int64 // Unix seconds; also every file's mtime
	Depends                          []string
	Scripts                          map[string][]byte // key: one of Scripts
	Files                            []File
	// Conffiles are paths among Files that the package marks as
	// configuration, as OpenWrt's build does for apk:
	// /lib/apk/packages/<name>.conffiles (the list) and .conffiles_static
	// (path and SHA-256), read by sysupgrade and OpenWrt's scripts. The
	// list of all files, <name>.list, is added as well.
	Conffiles []string
}

var (
	nameRE    = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._+-]*$`)
	versionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(~[0-9a-f]+)?(-r[0-9]+)?$`)
)

// ValidVersion reports whether v is a version apk accepts
// (number{.number}...{letter}{_suffix{number}}...{~hash}{-r#},
// apk-package(5)).
func ValidVersion(v string) bool { return versionRE.MatchString(v) }

// adb builds the payload of an ADB block: an 8-byte header (compat
// version, version, reserved, root) and then the values.
type adb struct{ b []byte }

func newADB() *adb { return &adb{b: make([]byte, 8)} }

func (a *adb) align(n int) {
	for len(a.b)%n != 0 {
		a.b = append(a.b, 0)
	}
}

func (a *adb) offset() (uint32, error) {
	if len(a.b) > valueMask {
		return 0, errors.New("apkv3: metadata larger than 256 MiB")
	}
	return uint32(len(a.b)), nil
}

// blob writes b with its length (1, 2 or 4 bytes, the value aligned to
// that size); an empty blob is NULL.
func (a *adb) blob(b []byte) (uint32, error) {
	var typ uint32
	switch n := len(b); {
	case n == 0:
		return 0, nil
	case n <= 0xff:
		typ = typeBlob8
	case n <= 0xffff:
		typ = typeBlob16
		a.align(2)
	default:
		typ = typeBlob32
		a.align(4)
	}
	off, err := a.offset()
	if err != nil {
		return 0, err
	}
	switch typ {
	case typeBlob8:
		a.b = append(a.b, byte(len(b)))
	case typeBlob16:
		a.b = binary.LittleEndian.AppendUint16(a.b, uint16(len(b)))
	default:
		a.b = binary.LittleEndian.AppendUint32(a.b, uint32(len(b)))
	}
	a.b = append(a.b, b...)
	return typ | off, nil
}

// int stores v in the tag when it fits 28 bits, else beside it.
func (a *adb) int(v uint64) (uint32, error) {
	if v <= valueMask {
		return typeInt | uint32(v), nil
	}
	a.align(4)
	off, err := a.offset()
	if err != nil {
		return 0, err
	}
	if v <= 0xffffffff {
		a.b = binary.LittleEndian.AppendUint32(a.b, uint32(v))
		return typeInt32 | off, nil
	}
	a.b = binary.LittleEndian.AppendUint64(a.b, v)
	return typeInt64 | off, nil
}

// list writes an object or array: slot 0 holds the number of slots, then
// slots[i] is field (or item) i+1. Trailing NULLs are left out; an empty
// one is NULL.
func (a *adb) list(typ uint32, slots []uint32) (uint32, error) {
	for len(slots) > 0 && slots[len(slots)-1] == 0 {
		slots = slots[:len(slots)-1]
	}
	if len(slots) == 0 {
		return 0, nil
	}
	a.align(4)
	off, err := a.offset()
	if err != nil {
		return 0, err
	}
	a.b = binary.LittleEndian.AppendUint32(a.b, uint32(len(slots)+1))
	for _, s := range slots {
		a.b = binary.LittleEndian.AppendUint32(a.b, s)
	}
	return typ | off, nil
}

// w collects the first error of a sequence of writes.
type w struct {
	a   *adb
	err error
}

func (x *w) blob(b []byte) uint32 {
	v, err := x.a.blob(b)
	x.err = cmp(x.err, err)
	return v
}
func (x *w) str(s string) uint32 { return x.blob([]byte(s)) }
func (x *w) int(n uint64) uint32 {
	v, err := x.a.int(n)
	x.err = cmp(x.err, err)
	return v
}
func (x *w) obj(slots ...uint32) uint32 {
	v, err := x.a.list(typeObject, slots)
	x.err = cmp(x.err, err)
	return v
}

// fields writes an object from field number -> value.
func (x *w) fields(f map[int]uint32) uint32 {
	n := 0
	for i := range f {
		n = max(n, i)
	}
	slots := make([]uint32, n)
	for i, v := range f {
		slots[i-1] = v
	}
	return x.obj(slots...)
}

func (x *w) arr(items []uint32) uint32 {
	v, err := x.a.list(typeArray, items)
	x.err = cmp(x.err, err)
	return v
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// dir is one directory of the package with its files, sorted by name.
type dir struct {
	name  string // "" for the root, else without a leading "/"
	files []File // base names in Path
}

func (p *Package) check() error {
	if !nameRE.MatchString(p.Name) {
		return fmt.Errorf("apkv3: package name %q: only [a-zA-Z0-9._+-], starting with a letter or digit", p.Name)
	}
	if !ValidVersion(p.Version) {
		return fmt.Errorf("apkv3: version %q is not an apk version (number{.number}{letter}{_suffix{number}}{~hash}{-r#})", p.Version)
	}
	if p.Arch == "" {
		return errors.New("apkv3: no architecture")
	}
	if strings.ContainsAny(p.Description, "\n") {
		return errors.New("apkv3: the description is one line")
	}
	for _, d := range p.Depends {
		if !nameRE.MatchString(d) {
			return fmt.Errorf("apkv3: dependency %q: only package names are supported", d)
		}
	}
	for k := range p.Scripts {
		if !slices.Contains(Scripts, k) {
			return fmt.Errorf("apkv3: unknown script %q (one of %s)", k, strings.Join(Scripts, ", "))
		}
	}
	seen := map[string]bool{}
	for _, f := range p.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return fmt.Errorf("apkv3: file path %q is not a clean absolute path", f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("apkv3: %s twice", f.Path)
		}
		seen[f.Path] = true
	}
	for _, c := range p.Conffiles {
		if !seen[c] {
			return fmt.Errorf("apkv3: conffile %s is not among the files", c)
		}
	}
	return nil
}

// withMeta returns the files plus OpenWrt's /lib/apk/packages/<name>.*
// files.
func (p *Package) withMeta() []File {
	files := slices.Clone(p.Files)
	meta := "/lib/apk/packages/" + p.Name
	if len(p.Conffiles) > 0 {
		var list, static strings.Builder
		for _, c := range p.Conffiles {
			list.WriteString(c + "\n")
			for _, f := range p.Files {
				if f.Path == c {
					fmt.Fprintf(&static, "%s %x\n", c, sha256.Sum256(f.Data))
				}
			}
		}
		files = append(files,
			File{Path: meta + ".conffiles", Mode: 0o644, Data: []byte(list.String())},
			File{Path: meta + ".conffiles_static", Mode: 0o644, Data: []byte(static.String())})
	}
	// The .list names the package's own files (OpenWrt writes it before
	// the conffiles lists and itself are added).
	var names []string
	for _, f := range p.Files {
		names = append(names, f.Path)
	}
	sort.Strings(names)
	files = append(files, File{Path: meta + ".list", Mode: 0o644, Data: []byte(strings.Join(names, "\n") + "\n")})
	return files
}

// dirs groups files by directory; every ancestor directory is listed,
// the root included (as `apk mkpkg` without pruning does), sorted by name.
func dirs(files []File) []dir {
	byName := map[string]*dir{"": {}}
	for _, f := range files {
		d := strings.TrimPrefix(path.Dir(f.Path), "/")
		if byName[d] == nil {
			byName[d] = &dir{name: d}
		}
		byName[d].files = append(byName[d].files, f)
		for p := d; p != "" && p != "."; p = path.Dir(p) {
			if byName[p] == nil {
				byName[p] = &dir{name: p}
			}
		}
	}
	delete(byName, ".")
	var out []dir
	for _, d := range byName {
		sort.Slice(d.files, func(i, j int) bool { return path.Base(d.files[i].Path) < path.Base(d.files[j].Path) })
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Write writes the package to out.
func (p *Package) Write(out io.Writer) error {
	if err := p.check(); err != nil {
		return err
	}
	files := p.withMeta()
	ds := dirs(files)
	a := newADB()
	x := &w{a: a}

	// 1. Package info; the unique id is written zeroed, filled in below.
	var installed uint64
	for _, f := range files {
		installed += uint64(len(f.Data))
	}
	installed = max(installed, 1)
	deps := slices.Clone(p.Depends)
	sort.Strings(deps)
	deps = slices.Compact(deps)
	var depVals []uint32
	for _, d := range deps {
		depVals = append(depVals, x.fields(map[int]uint32{depName: x.str(d)}))
	}
	info := make([]uint32, piMax-1)
	set := func(i int, v uint32) { info[i-1] = v }
	set(piName, x.str(p.Name))
	set(piVersion, x.str(p.Version))
	uidVal := x.blob(make([]byte, uidLen))
	set(piHashes, uidVal)
	set(piDescription, x.str(p.Description))
	set(piArch, x.str(p.Arch))
	set(piLicense, x.str(p.License))
	set(piOrigin, x.str(p.Origin))
	set(piMaintainer, x.str(p.Maintainer))
	set(piURL, x.str(p.URL))
	set(piBuildTime, x.int(uint64(max(p.BuildTime, 0))))
	set(piInstalledSize, x.int(installed))
	set(piDepends, x.arr(depVals))
	infoVal := x.obj(info...)

	// The directories and their files.
	root := x.str("root")
	var dirVals []uint32
	for _, d := range ds {
		var fileVals []uint32
		for _, f := range d.files {
			sum := sha256.Sum256(f.Data)
			acl := x.fields(map[int]uint32{aclMode: x.int(uint64(f.Mode.Perm())), aclUser: root, aclGroup: root})
			fv := make([]uint32, fiHashes)
			fv[fiName-1] = x.str(path.Base(f.Path))
			fv[fiACL-1] = acl
			fv[fiSize-1] = x.int(uint64(len(f.Data)))
			fv[fiMtime-1] = x.int(uint64(max(p.BuildTime, 0)))
			fv[fiHashes-1] = x.blob(sum[:])
			fileVals = append(fileVals, x.obj(fv...))
		}
		dv := make([]uint32, diFiles)
		dv[diName-1] = x.str(d.name)
		dv[diACL-1] = x.fields(map[int]uint32{aclMode: x.int(0o755), aclUser: root, aclGroup: root})
		dv[diFiles-1] = x.arr(fileVals)
		dirVals = append(dirVals, x.obj(dv...))
	}
	pathsVal := x.arr(dirVals)

	var scriptVals []uint32
	for _, k := range Scripts {
		scriptVals = append(scriptVals, x.blob(p.Scripts[k]))
	}
	scriptsVal := x.obj(scriptVals...)
	rootVal := x.fields(map[int]uint32{pkgInfo: infoVal, pkgPaths: pathsVal, pkgScripts: scriptsVal})
	if x.err != nil {
		return x.err
	}
	binary.LittleEndian.PutUint32(a.b[4:], rootVal)

	// 2. The unique id: the SHA-256 of the block with the id zeroed.
	sum := sha256.Sum256(a.b)
	off := uidVal & valueMask
	copy(a.b[off+1:off+1+uidLen], sum[:uidLen])

	// 3. The file.
	var raw bytes.Buffer
	raw.WriteString("ADB.")
	raw.Write(binary.LittleEndian.AppendUint32(nil, schemaPackage))
	if err := block(&raw, blockADB, a.b); err != nil {
		return err
	}
	for i, d := range ds {
		for j, f := range d.files {
			if len(f.Data) == 0 {
				continue
			}
			hdr := binary.LittleEndian.AppendUint32(nil, uint32(i+1))
			hdr = binary.LittleEndian.AppendUint32(hdr, uint32(j+1))
			if err := block(&raw, blockData, append(hdr, f.Data...)); err != nil {
				return fmt.Errorf("%s: %w", f.Path, err)
			}
		}
	}
	if _, err := io.WriteString(out, "ADBd"); err != nil {
		return err
	}
	zw, err := flate.NewWriter(out, flate.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return err
	}
	return zw.Close()
}

// block appends one block: a 32-bit tag (2 bits of type, 30 bits of size
// including the tag), the payload, zeros up to a multiple of 8.
func block(buf *bytes.Buffer, typ uint32, payload []byte) error {
	if len(payload) > maxBlock {
		return fmt.Errorf("apkv3: block of %d bytes (more than 1 GiB is not supported)", len(payload))
	}
	size := uint32(4 + len(payload))
	buf.Write(binary.LittleEndian.AppendUint32(nil, typ<<30|size))
	buf.Write(payload)
	for size%8 != 0 {
		buf.WriteByte(0)
		size++
	}
	return nil
}
