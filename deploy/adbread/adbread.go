// Package adbread reads an apk-tools 3 package (.apk, the ADB container)
// back, for the tests of what `make package` builds. It is written from
// apk-tools' own description of the format (doc/apk-v3.5.scd,
// doc/apk-package.5.scd, the field numbers in src/apk_adb.h and the block
// and value layout in src/adb.h) and shares no code with the writer
// (deploy/apkv3), so that a misreading of the format in one shows up
// against the other.
//
// The flow of Read:
//  1. The compression: "ADB." (none) or "ADBd" (raw deflate) in front.
//  2. The file header: "ADB." and the schema, which must be "pckg".
//  3. The blocks, each a 32-bit tag (type in the top 2 bits, size with the
//     tag in the low 30) padded with zeros to 8 bytes: one ADB block, any
//     SIG blocks, then DATA blocks; an extended (type 3) tag is refused,
//     as apk refuses DATAX.
//  4. The ADB block: the header (compat version 0), the root object, and
//     from it info, paths and scripts; every value is checked to lie in
//     the block.
//  5. Each DATA block names the path and file index it carries; they must
//     come in the order of the metadata, with the size and SHA-256 the
//     metadata records.
package adbread

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
)

// Entry is a directory or file of the package.
type Entry struct {
	Path         string // absolute
	Dir          bool
	Mode         fs.FileMode // permission bits
	User, Group  string
	Size         uint64
	MTime        uint64
	SHA256       []byte
	Data         []byte // regular files only
	PathIndex    int    // position in the metadata, 1-based
	FileIndex    int
	DataInBlocks bool // the data came in a DATA block
}

// Package is what Read found.
type Package struct {
	Compression   string // "none" or "deflate"
	Name          string
	Version       string
	UniqueID      []byte
	Description   string
	Arch          string
	License       string
	Origin        string
	Maintainer    string
	URL           string
	BuildTime     uint64
	InstalledSize uint64
	Depends       []string
	Scripts       map[string]string
	Entries       []Entry
	SigBlocks     int
	// UniqueIDOK: UniqueID is the start of the SHA-256 of the ADB block
	// taken with UniqueID zeroed (what apk mkpkg writes).
	UniqueIDOK bool
}

// Files returns the regular files by path.
func (p *Package) Files() map[string]*Entry {
	m := map[string]*Entry{}
	for i := range p.Entries {
		if !p.Entries[i].Dir {
			m[p.Entries[i].Path] = &p.Entries[i]
		}
	}
	return m
}

// ReadFile reads the package in file name.
func ReadFile(name string) (*Package, error) {
	f, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return Read(f)
}

// limit bounds the inflated package (the gateway's package is ~10 MB).
const limit = 256 << 20

// Read reads a package from its bytes.
func Read(b []byte) (*Package, error) {
	p := &Package{Scripts: map[string]string{}}
	// 1. Compression.
	if len(b) < 4 || string(b[:3]) != "ADB" {
		return nil, errors.New("adbread: not an ADB file (no \"ADB\" at the start)")
	}
	switch b[3] {
	case '.':
		p.Compression = "none"
	case 'd':
		p.Compression = "deflate"
		r := flate.NewReader(bytes.NewReader(b[4:]))
		raw, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err != nil {
			return nil, fmt.Errorf("adbread: inflate: %w", err)
		}
		if len(raw) > limit {
			return nil, errors.New("adbread: inflated package larger than 256 MiB")
		}
		b = raw
	default:
		return nil, fmt.Errorf("adbread: compression %q not supported", b[3])
	}
	// 2. Header.
	if len(b) < 8 || string(b[:4]) != "ADB." {
		return nil, errors.New("adbread: no ADB. header")
	}
	if s := string(b[4:8]); s != "pckg" {
		return nil, fmt.Errorf("adbread: schema %q, want pckg", s)
	}
	// 3. Blocks.
	rest := b[8:]
	var meta []byte
	var data [][]byte
	for len(rest) > 0 {
		if len(rest) < 4 {
			return nil, errors.New("adbread: truncated block tag")
		}
		tag := binary.LittleEndian.Uint32(rest)
		typ, size := tag>>30, int(tag&0x3fffffff)
		if typ == 3 {
			return nil, errors.New("adbread: extended block (DATAX) not allowed")
		}
		if size < 4 || size > len(rest) {
			return nil, fmt.Errorf("adbread: block size %d out of range", size)
		}
		padded := (size + 7) &^ 7
		if padded > len(rest) {
			return nil, errors.New("adbread: block padding missing")
		}
		for _, z := range rest[size:padded] {
			if z != 0 {
				return nil, errors.New("adbread: non-zero block padding")
			}
		}
		payload := rest[4:size]
		switch typ {
		case 0:
			if meta != nil || len(data) > 0 || p.SigBlocks > 0 {
				return nil, errors.New("adbread: ADB block not first or not alone")
			}
			meta = payload
		case 1:
			if meta == nil || len(data) > 0 {
				return nil, errors.New("adbread: SIG block out of order")
			}
			p.SigBlocks++
		case 2:
			if meta == nil {
				return nil, errors.New("adbread: DATA before ADB")
			}
			data = append(data, payload)
		}
		rest = rest[padded:]
	}
	if meta == nil {
		return nil, errors.New("adbread: no ADB block")
	}
	// 4. Metadata.
	if err := p.readMeta(meta); err != nil {
		return nil, err
	}
	// 5. Data.
	var want []*Entry
	for i := range p.Entries {
		if e := &p.Entries[i]; !e.Dir && e.Size > 0 {
			want = append(want, e)
		}
	}
	if len(data) != len(want) {
		return nil, fmt.Errorf("adbread: %d DATA blocks for %d non-empty files", len(data), len(want))
	}
	for i, d := range data {
		e := want[i]
		if len(d) < 8 {
			return nil, errors.New("adbread: DATA block without its header")
		}
		pi, fi := int(binary.LittleEndian.Uint32(d)), int(binary.LittleEndian.Uint32(d[4:]))
		if pi != e.PathIndex || fi != e.FileIndex {
			return nil, fmt.Errorf("adbread: DATA block %d is for path %d file %d, want %d/%d (%s)", i, pi, fi, e.PathIndex, e.FileIndex, e.Path)
		}
		e.Data = d[8:]
		if uint64(len(e.Data)) != e.Size {
			return nil, fmt.Errorf("adbread: %s: %d bytes of data, metadata says %d", e.Path, len(e.Data), e.Size)
		}
		if sum := sha256.Sum256(e.Data); !bytes.Equal(sum[:], e.SHA256) {
			return nil, fmt.Errorf("adbread: %s: SHA-256 of the data does not match the metadata", e.Path)
		}
		e.DataInBlocks = true
	}
	for i := range p.Entries {
		if e := &p.Entries[i]; !e.Dir && e.Size == 0 {
			if sum := sha256.Sum256(nil); !bytes.Equal(sum[:], e.SHA256) {
				return nil, fmt.Errorf("adbread: %s: empty file with a SHA-256 of something else", e.Path)
			}
			e.Data = []byte{}
		}
	}
	return p, nil
}

// view decodes values of one ADB block.
type view struct{ b []byte }

// Value tag types, from the top 4 bits (apk-v3(5), WIRE FORMAT).
const (
	tSpecial = 0x0
	tInt     = 0x1
	tInt32   = 0x2
	tInt64   = 0x3
	tBlob8   = 0x8
	tBlob16  = 0x9
	tBlob32  = 0xa
	tArray   = 0xd
	tObject  = 0xe
)

func (v view) at(off, n int) ([]byte, error) {
	if off < 0 || n < 0 || off+n > len(v.b) {
		return nil, fmt.Errorf("adbread: value at %d+%d beyond the %d-byte block", off, n, len(v.b))
	}
	return v.b[off : off+n], nil
}

func (v view) blob(tag uint32) ([]byte, error) {
	typ, off := tag>>28, int(tag&0x0fffffff)
	var hdr int
	switch typ {
	case tSpecial:
		if tag != 0 {
			return nil, fmt.Errorf("adbread: special value %#x where a blob belongs", tag)
		}
		return nil, nil
	case tBlob8:
		hdr = 1
	case tBlob16:
		hdr = 2
	case tBlob32:
		hdr = 4
	default:
		return nil, fmt.Errorf("adbread: value type %#x where a blob belongs", typ)
	}
	h, err := v.at(off, hdr)
	if err != nil {
		return nil, err
	}
	var n int
	switch hdr {
	case 1:
		n = int(h[0])
	case 2:
		n = int(binary.LittleEndian.Uint16(h))
	case 4:
		n = int(binary.LittleEndian.Uint32(h))
	}
	return v.at(off+hdr, n)
}

func (v view) str(tag uint32) (string, error) {
	b, err := v.blob(tag)
	return string(b), err
}

func (v view) num(tag uint32) (uint64, error) {
	typ, val := tag>>28, tag&0x0fffffff
	switch typ {
	case tSpecial:
		if tag != 0 {
			return 0, fmt.Errorf("adbread: special value %#x where a number belongs", tag)
		}
		return 0, nil
	case tInt:
		return uint64(val), nil
	case tInt32:
		b, err := v.at(int(val), 4)
		if err != nil {
			return 0, err
		}
		return uint64(binary.LittleEndian.Uint32(b)), nil
	case tInt64:
		b, err := v.at(int(val), 8)
		if err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint64(b), nil
	}
	return 0, fmt.Errorf("adbread: value type %#x where a number belongs", typ)
}

// slots returns an object's or array's slots; slots[0] is unused (it
// held the count), so field i is slots[i]. NULL gives one slot. Either
// tag is taken for either, as apk does: the wire encoding of both is the
// same (apk-v3(5)), and apk mkpkg tags a dependency array it parsed from
// a string as an object.
func (v view) slots(tag uint32, _ uint32) ([]uint32, error) {
	if tag == 0 {
		return []uint32{1}, nil
	}
	if t := tag >> 28; t != tArray && t != tObject {
		return nil, fmt.Errorf("adbread: value type %#x where an object or array belongs", t)
	}
	off := int(tag & 0x0fffffff)
	h, err := v.at(off, 4)
	if err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint32(h))
	if n < 1 || n > len(v.b)/4 {
		return nil, fmt.Errorf("adbread: %d slots", n)
	}
	raw, err := v.at(off, 4*n)
	if err != nil {
		return nil, err
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	return out, nil
}

// field returns slot i or NULL past the end.
func field(s []uint32, i int) uint32 {
	if i < len(s) {
		return s[i]
	}
	return 0
}

// Field numbers (src/apk_adb.h).
const (
	pkgInfo, pkgPaths, pkgScripts = 1, 2, 3

	piName, piVersion, piHashes, piDescription, piArch = 1, 2, 3, 4, 5
	piLicense, piOrigin, piMaintainer, piURL           = 6, 7, 8, 9
	piBuildTime, piInstalledSize, piDepends            = 11, 12, 15

	diName, diACL, diFiles                   = 1, 2, 3
	fiName, fiACL, fiSize, fiMtime, fiHashes = 1, 2, 3, 4, 5
	fiTarget                                 = 6
	aclMode, aclUser, aclGroup               = 1, 2, 3
	depName, depVersion                      = 1, 2
	scrTrigger, scrPostUpgrade               = 1, 7
	hdrLen                                   = 8 // compat, version, reserved(2), root(4)
	compatVersion                            = 0
)

var scriptNames = map[int]string{1: "trigger", 2: "pre-install", 3: "post-install", 4: "pre-deinstall", 5: "post-deinstall", 6: "pre-upgrade", 7: "post-upgrade"}

func (p *Package) readMeta(meta []byte) error {
	if len(meta) < hdrLen {
		return errors.New("adbread: ADB block shorter than its header")
	}
	if meta[0] != compatVersion {
		return fmt.Errorf("adbread: ADB compat version %d", meta[0])
	}
	v := view{meta}
	root, err := v.slots(binary.LittleEndian.Uint32(meta[4:]), tObject)
	if err != nil {
		return fmt.Errorf("adbread: root: %w", err)
	}
	info, err := v.slots(field(root, pkgInfo), tObject)
	if err != nil {
		return fmt.Errorf("adbread: info: %w", err)
	}
	strs := []struct {
		i   int
		dst *string
	}{{piName, &p.Name}, {piVersion, &p.Version}, {piDescription, &p.Description}, {piArch, &p.Arch},
		{piLicense, &p.License}, {piOrigin, &p.Origin}, {piMaintainer, &p.Maintainer}, {piURL, &p.URL}}
	for _, s := range strs {
		if *s.dst, err = v.str(field(info, s.i)); err != nil {
			return fmt.Errorf("adbread: info field %d: %w", s.i, err)
		}
	}
	if p.UniqueID, err = v.blob(field(info, piHashes)); err != nil {
		return err
	}
	if p.BuildTime, err = v.num(field(info, piBuildTime)); err != nil {
		return err
	}
	if p.InstalledSize, err = v.num(field(info, piInstalledSize)); err != nil {
		return err
	}
	deps, err := v.slots(field(info, piDepends), tArray)
	if err != nil {
		return fmt.Errorf("adbread: depends: %w", err)
	}
	for _, d := range deps[1:] {
		dep, err := v.slots(d, tObject)
		if err != nil {
			return err
		}
		name, err := v.str(field(dep, depName))
		if err != nil {
			return err
		}
		if ver, _ := v.str(field(dep, depVersion)); ver != "" {
			name += "=" + ver // enough for the tests: no operator other than =
		}
		p.Depends = append(p.Depends, name)
	}
	// The unique id, recomputed with itself zeroed.
	if n := len(p.UniqueID); n > 0 {
		tag := field(info, piHashes)
		off := int(tag&0x0fffffff) + 1
		c := bytes.Clone(meta)
		clear(c[off : off+n])
		sum := sha256.Sum256(c)
		p.UniqueIDOK = n <= len(sum) && bytes.Equal(sum[:n], p.UniqueID)
	}

	scripts, err := v.slots(field(root, pkgScripts), tObject)
	if err != nil {
		return fmt.Errorf("adbread: scripts: %w", err)
	}
	for i := scrTrigger; i <= scrPostUpgrade; i++ {
		s, err := v.str(field(scripts, i))
		if err != nil {
			return fmt.Errorf("adbread: script %s: %w", scriptNames[i], err)
		}
		if s != "" {
			p.Scripts[scriptNames[i]] = s
		}
	}

	paths, err := v.slots(field(root, pkgPaths), tArray)
	if err != nil {
		return fmt.Errorf("adbread: paths: %w", err)
	}
	var dirNames []string
	for pi := 1; pi < len(paths); pi++ {
		d, err := v.slots(paths[pi], tObject)
		if err != nil {
			return err
		}
		name, err := v.str(field(d, diName))
		if err != nil {
			return err
		}
		dirNames = append(dirNames, name)
		de := Entry{Path: "/" + name, Dir: true, PathIndex: pi}
		if err := v.acl(field(d, diACL), &de); err != nil {
			return fmt.Errorf("adbread: /%s: %w", name, err)
		}
		p.Entries = append(p.Entries, de)
		files, err := v.slots(field(d, diFiles), tArray)
		if err != nil {
			return err
		}
		var fileNames []string
		for fi := 1; fi < len(files); fi++ {
			f, err := v.slots(files[fi], tObject)
			if err != nil {
				return err
			}
			fname, err := v.str(field(f, fiName))
			if err != nil {
				return err
			}
			fileNames = append(fileNames, fname)
			full := "/" + fname
			if name != "" {
				full = "/" + name + "/" + fname
			}
			if field(f, fiTarget) != 0 {
				return fmt.Errorf("adbread: %s: links and devices are not expected", full)
			}
			e := Entry{Path: full, PathIndex: pi, FileIndex: fi}
			if err := v.acl(field(f, fiACL), &e); err != nil {
				return fmt.Errorf("adbread: %s: %w", full, err)
			}
			if e.Size, err = v.num(field(f, fiSize)); err != nil {
				return err
			}
			if e.MTime, err = v.num(field(f, fiMtime)); err != nil {
				return err
			}
			if e.SHA256, err = v.blob(field(f, fiHashes)); err != nil {
				return err
			}
			if len(e.SHA256) != sha256.Size {
				return fmt.Errorf("adbread: %s: hash of %d bytes, want a SHA-256", full, len(e.SHA256))
			}
			p.Entries = append(p.Entries, e)
		}
		// apk looks names up by binary search: the arrays are sorted.
		if !sort.StringsAreSorted(fileNames) {
			return fmt.Errorf("adbread: files of /%s not sorted: %q", name, fileNames)
		}
	}
	if !sort.StringsAreSorted(dirNames) {
		return fmt.Errorf("adbread: directories not sorted: %q", dirNames)
	}
	return nil
}

func (v view) acl(tag uint32, e *Entry) error {
	acl, err := v.slots(tag, tObject)
	if err != nil {
		return err
	}
	mode, err := v.num(field(acl, aclMode))
	if err != nil {
		return err
	}
	if mode > 0o7777 {
		return fmt.Errorf("mode %o has more than permission bits", mode)
	}
	e.Mode = fs.FileMode(mode)
	if e.User, err = v.str(field(acl, aclUser)); err != nil {
		return err
	}
	e.Group, err = v.str(field(acl, aclGroup))
	return err
}
