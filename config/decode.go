// Decoding: a yaml.Node tree walked against the Config struct.
//
// yaml.v3's own decoder stops at the first type error and its KnownFields
// message does not name the dotted field path, so the tree is walked here:
//  1. A mapping is matched against a struct's yaml tags; unknown, duplicate
//     and merge ("<<") keys are problems. Keys not present keep the value
//     already in the struct (the default).
//  2. A sequence replaces a slice as a whole; a null value empties it.
//  3. A scalar is parsed by the field's type (string, int, duration, byte
//     size, prefix, address, port range).
// Every value's line is recorded under its dotted path, so Validate can place
// later problems; every problem carries line and path.

package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

type decoder struct {
	file     string
	lines    map[string]int // dotted path -> line of the key or list element
	problems []Problem
	bad      map[string]bool // paths whose decoding failed
	// wide holds the integers too large for an int (on 32-bit platforms,
	// from 2^31), by path, as written: Validate reports them against the
	// field's range, as it does any other value out of range.
	wide map[string]string
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, lines: make(map[string]int), bad: make(map[string]bool), wide: make(map[string]string)}
}

func (d *decoder) problem(line int, path, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Line: line, Field: path, Reason: fmt.Sprintf(format, args...)})
	if path != "" {
		d.bad[path] = true
	}
}

// failed reports whether decoding path, or a field containing it, failed;
// Validate's problems for such a path would only repeat the first one.
func (d *decoder) failed(path string) bool {
	for p := path; p != ""; p = parentPath(p) {
		if d.bad[p] {
			return true
		}
	}
	return false
}

// parentPath strips the last ".key" or "[i]" from a dotted path.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// document parses data as one YAML document and decodes it into c.
func (d *decoder) document(data []byte, c *Config) {
	root, err := parseYAML(data)
	if err != nil {
		d.problems = append(d.problems, yamlProblem(d.file, err))
		return
	}
	if root == nil {
		return // empty file: all defaults
	}
	d.value(root, reflect.ValueOf(c).Elem(), "")
}

// parseYAML returns the content node of the only document in data, or nil
// when data holds no document (empty, or only comments).
func parseYAML(data []byte) (root *yaml.Node, err error) {
	defer func() {
		// yaml.v3 is not supposed to panic on any input; if it does, the
		// input is reported as malformed rather than taking the caller down.
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml: parser failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("yaml: line %d: more than one YAML document (remove the \"---\")", extra.Line)
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

// yamlProblem turns a yaml.v3 syntax error ("yaml: line 4: did not find
// expected key") into a Problem at that line.
func yamlProblem(file string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ":"); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line = n
				msg = strings.TrimSpace(after)
			}
		}
	}
	return Problem{File: file, Line: line, Reason: "YAML syntax: " + msg}
}

// maxAliasHops bounds the resolution of alias chains.
const maxAliasHops = 16

// resolve follows aliases ("*name") to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; i < maxAliasHops && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "an unsupported YAML node"
}

// value decodes n into v, whose dotted path is path.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	if n.Kind == yaml.AliasNode {
		d.problem(n.Line, path, "alias chain longer than %d", maxAliasHops)
		return
	}
	switch p := v.Addr().Interface().(type) {
	case *string:
		if isNull(n) {
			*p = "" // "token_file:" means none; Validate refuses "" where it is wrong
			return
		}
		if s, ok := d.scalar(n, path, "a string"); ok {
			*p = s
		}
	case *int:
		if s, ok := d.scalar(n, path, "an integer"); ok {
			i, err := strconv.ParseInt(s, 10, 0)
			if errors.Is(err, strconv.ErrRange) {
				// An integer, only too wide for int (every limit in
				// validate.go fits 32 bits): out of range, not malformed.
				d.wide[path] = s
				*p = 0
				return
			}
			if err != nil {
				d.problem(n.Line, path, "want an integer, got %q", s)
				return
			}
			*p = int(i)
		}
	case *time.Duration:
		if s, ok := d.scalar(n, path, "a duration such as \"30s\""); ok {
			dur, err := ParseDuration(s)
			if err != nil {
				d.problem(n.Line, path, "%v", err)
				return
			}
			*p = dur
		}
	case *ByteSize:
		if s, ok := d.scalar(n, path, "a size such as \"64MiB\""); ok {
			size, err := ParseByteSize(s)
			if err != nil {
				d.problem(n.Line, path, "%v", err)
				return
			}
			*p = size
		}
	case *netip.Prefix:
		if s, ok := d.scalar(n, path, "a prefix such as \"10.0.0.0/8\""); ok {
			pf, err := netip.ParsePrefix(s)
			if err != nil {
				d.problem(n.Line, path, "invalid prefix %q (want address/bits, e.g. \"192.168.0.0/16\")", s)
				return
			}
			*p = pf
		}
	case *netip.Addr:
		if s, ok := d.scalar(n, path, "an IP address"); ok {
			a, err := netip.ParseAddr(s)
			if err != nil {
				d.problem(n.Line, path, "invalid IP address %q", s)
				return
			}
			*p = a
		}
	case *PortRange:
		if s, ok := d.scalar(n, path, "a port or a range such as \"6000-6010\""); ok {
			r, err := ParsePortRange(s)
			if err != nil {
				d.problem(n.Line, path, "%v", err)
				return
			}
			*p = r
		}
	default:
		switch v.Kind() {
		case reflect.Struct:
			d.mapping(n, v, path)
		case reflect.Slice:
			d.sequence(n, v, path)
		default:
			// Only reachable by adding a field of a new type to Config.
			panic("config: no decoder for " + v.Type().String())
		}
	}
}

// scalar returns n's text, or records a problem when n is not a scalar.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.problem(n.Line, path, "want %s, got %s", want, kindName(n))
		return "", false
	}
	return n.Value, true
}

// mapping decodes a YAML mapping into the struct v, key by key.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return // "tcpcrypt:" with nothing under it keeps every default
	}
	if n.Kind != yaml.MappingNode {
		d.problem(n.Line, path, "want a mapping of keys, got %s", kindName(n))
		return
	}
	t := v.Type()
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.problem(k.Line, path, "keys must be plain names, got %s", kindName(k))
			continue
		}
		field := joinPath(path, k.Value)
		if k.ShortTag() == "!!merge" {
			d.problem(k.Line, field, "YAML merge keys (<<) are not supported; write the keys out")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.problem(k.Line, field, "duplicate key (first set on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		idx := fieldIndex(t, k.Value)
		if idx < 0 {
			names := fieldNames(t)
			hint := ""
			if near := nearest(k.Value, names); near != "" {
				hint = fmt.Sprintf(", did you mean %q?", near)
			}
			d.problem(k.Line, field, "unknown key%s (valid keys here: %s)", hint, strings.Join(names, ", "))
			continue
		}
		d.lines[field] = k.Line
		d.value(val, v.Field(idx), field)
	}
}

// sequence decodes a YAML list into the slice v, replacing its contents.
func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.problem(n.Line, path, "want a list such as [a, b], got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		elem := path + "[" + strconv.Itoa(i) + "]"
		d.lines[elem] = e.Line
		d.value(e, s.Index(i), elem)
	}
	v.Set(s)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldIndex returns the index of the exported field of t whose yaml tag is
// key, or -1.
func fieldIndex(t reflect.Type, key string) int {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); f.IsExported() && yamlName(f) == key {
			return i
		}
	}
	return -1
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); f.IsExported() {
			names = append(names, yamlName(f))
		}
	}
	return names
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// nearest returns the name closest to key when it is plausibly a typing
// error of it: a prefix of it, or within an edit distance of 2.
func nearest(key string, names []string) string {
	key = strings.ToLower(key)
	best, bestDist := "", 3
	for _, n := range names {
		if len(key) >= 3 && strings.HasPrefix(n, key) {
			return n
		}
		if d := editDistance(key, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance; keys are short, and a key longer
// than any valid name by more than 2 cannot be near one.
func editDistance(a, b string) int {
	if len(a) > len(b)+2 || len(b) > len(a)+2 {
		return 3
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
