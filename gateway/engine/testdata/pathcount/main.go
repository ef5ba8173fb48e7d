// pathcount measures how a packet's path through the engine moves between
// files (issue 20): it walks the static call graph of gateway/engine from
// ProcessOffload, depth first, each function once, callees in source order,
// and counts the files the walk passes through: stays (runs of consecutive
// steps in one file) and returns (stays in a file the walk had been in and
// left).
//
//	go run ./gateway/engine/testdata/pathcount gateway/engine [BEFORE.cov AFTER.cov]
//
// With two coverage profiles (-covermode=count) the walk follows only the
// call sites whose blocks ran more often in AFTER than in BEFORE: the path
// of what happened between the two runs (measure.sh: the handshake, and one
// data round). NOTYPES=1 leaves out calls into the data structures the
// stages use (rings, queues, sequence numbers, the output batch, the parsed
// segment, the counters): a call into one is not a step of the pipeline.
// NOLEAVES=1 leaves out functions that call no other engine function. V=1
// prints the walk.
package main

import (
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	dir := os.Args[1]
	verbose := os.Getenv("V") != ""
	var ran map[string][][4]int // file -> executed blocks (line, col, endline, endcol)
	if len(os.Args) > 3 {
		ran = executed(os.Args[2], os.Args[3])
	}
	fset := token.NewFileSet()
	var files []*ast.File
	var dirs []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if info.IsDir() && p != dir && strings.HasPrefix(filepath.Base(p), "testdata") {
			return filepath.SkipDir
		}
		if info.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	decls := map[types.Object]*ast.FuncDecl{}
	fileOf := map[*ast.FuncDecl]string{}
	imp := importer.ForCompiler(fset, "source", nil)
	pkgs := map[string]*types.Package{}
	var infos []*types.Info
	var pfiles [][]*ast.File
	// Type-check subpackages first (they are imported by the engine).
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		ents, _ := os.ReadDir(d)
		var fs []*ast.File
		for _, e := range ents {
			n := e.Name()
			if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(d, n), nil, 0)
			if err != nil {
				panic(err)
			}
			fs = append(fs, f)
		}
		if len(fs) == 0 {
			continue
		}
		info := &types.Info{Uses: map[*ast.Ident]types.Object{}, Defs: map[*ast.Ident]types.Object{}, Selections: map[*ast.SelectorExpr]*types.Selection{}}
		conf := types.Config{Importer: importerFunc(func(path string) (*types.Package, error) {
			for k, p := range pkgs {
				if strings.HasSuffix(path, k) {
					return p, nil
				}
			}
			return imp.Import(path)
		})}
		rel, _ := filepath.Rel(dir, d)
		pkg, err := conf.Check(rel, fset, fs, info)
		if err != nil {
			panic(err)
		}
		pkgs["gateway/engine/"+rel] = pkg
		infos = append(infos, info)
		pfiles = append(pfiles, fs)
		files = append(files, fs...)
		for _, f := range fs {
			for _, dcl := range f.Decls {
				if fd, ok := dcl.(*ast.FuncDecl); ok {
					obj := info.Defs[fd.Name]
					decls[origin(obj)] = fd
					r, _ := filepath.Rel(dir, fset.Position(fd.Pos()).Filename)
					fileOf[fd] = r
				}
			}
		}
	}
	_ = files
	uses := map[*ast.Ident]types.Object{}
	for _, in := range infos {
		for k, v := range in.Uses {
			uses[k] = v
		}
	}
	var start *ast.FuncDecl
	for o, fd := range decls {
		if fd.Name.Name == "ProcessOffload" && fd.Recv != nil {
			_ = o
			start = fd
		}
	}
	seen := map[*ast.FuncDecl]bool{}
	skipLeaves := os.Getenv("NOLEAVES") != ""
	// The data structures the stages use (rings, queues, sequence numbers,
	// the output batch): a call into one is not a step of the pipeline.
	skipTypes := os.Getenv("NOTYPES") != ""
	dataTypes := map[string]bool{"byteRing": true, "recRing": true, "oooQueue": true, "oooSeg": true, "seqNum": true,
		"slicePool": true, "Output": true, "frameRec": true, "segment": true, "Stats": true}
	dataFuncs := map[string]bool{"b2i": true, "b2u": true, "seqLT": true, "seqGT": true, "seqLEQ": true, "seqMax": true, "seqMin": true, "newOOOSeg": true}
	isDataType := func(fd *ast.FuncDecl) bool {
		if fd.Recv == nil {
			return dataFuncs[fd.Name.Name]
		}
		t := fd.Recv.List[0].Type
		if s, ok := t.(*ast.StarExpr); ok {
			t = s.X
		}
		if ix, ok := t.(*ast.IndexExpr); ok {
			t = ix.X
		}
		return dataTypes[t.(*ast.Ident).Name]
	}
	// A leaf calls no function of the engine: a helper that returns at
	// once (sequence arithmetic, ring accessors).
	isLeaf := func(fd *ast.FuncDecl) bool {
		leaf := true
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if c, ok := n.(*ast.CallExpr); ok {
				var id *ast.Ident
				switch fn := ast.Unparen(c.Fun).(type) {
				case *ast.Ident:
					id = fn
				case *ast.SelectorExpr:
					id = fn.Sel
				}
				if id != nil && decls[origin(uses[id])] != nil {
					leaf = false
				}
			}
			return leaf
		})
		return leaf
	}
	var trail []string
	var walk func(fd *ast.FuncDecl, depth int)
	walk = func(fd *ast.FuncDecl, depth int) {
		seen[fd] = true
		here := fileOf[fd]
		trail = append(trail, here)
		if verbose {
			fmt.Printf("%s%s (%s)\n", strings.Repeat("  ", depth), fd.Name.Name, here)
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			var id *ast.Ident
			switch x := n.(type) {
			case *ast.CallExpr:
				switch fn := ast.Unparen(x.Fun).(type) {
				case *ast.Ident:
					id = fn
				case *ast.SelectorExpr:
					id = fn.Sel
				case *ast.IndexExpr:
					if s, ok := fn.X.(*ast.SelectorExpr); ok {
						id = s.Sel
					} else if i, ok := fn.X.(*ast.Ident); ok {
						id = i
					}
				}
			case *ast.SelectorExpr: // method values passed as arguments: (*Engine).admitOut
				if _, ok := uses[x.Sel].(*types.Func); ok {
					id = x.Sel
				}
			}
			if id == nil {
				return true
			}
			if ran != nil && !inBlock(ran, fset.Position(n.Pos())) {
				return true
			}
			obj := uses[id]
			if obj == nil {
				return true
			}
			callee := decls[origin(obj)]
			if callee == nil || seen[callee] {
				return true
			}
			if skipTypes && isDataType(callee) {
				seen[callee] = true
				return true
			}
			if skipLeaves && isLeaf(callee) {
				seen[callee] = true
				return true
			}
			walk(callee, depth+1)
			trail = append(trail, here) // back in the caller
			return true
		})
	}
	walk(start, 0)
	// stays: runs of one file
	var stays []string
	for _, f := range trail {
		if len(stays) == 0 || stays[len(stays)-1] != f {
			stays = append(stays, f)
		}
	}
	visited := map[string]int{}
	returns := 0
	for i, f := range stays {
		if visited[f] > 0 {
			returns++
		}
		visited[f]++
		_ = i
	}
	byFile := map[string]int{}
	for f, n := range visited {
		byFile[f] = n - 1
	}
	fmt.Printf("functions reached: %d, files: %d, stays: %d, returns to a file left: %d\n", len(seen), len(visited), len(stays), returns)
	type kv struct {
		k string
		v int
	}
	var l []kv
	for k, v := range byFile {
		l = append(l, kv{k, v})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v })
	for _, x := range l {
		fmt.Printf("  %-28s returns %d\n", x.k, x.v)
	}
}

func origin(o types.Object) types.Object {
	if f, ok := o.(*types.Func); ok {
		return f.Origin()
	}
	return o
}

type importerFunc func(string) (*types.Package, error)

func (f importerFunc) Import(p string) (*types.Package, error) { return f(p) }

func executed(before, after string) map[string][][4]int {
	read := func(p string) map[string]int {
		b, err := os.ReadFile(p)
		if err != nil {
			panic(err)
		}
		m := map[string]int{}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(l)
			if len(f) != 3 {
				continue
			}
			var n int
			fmt.Sscan(f[2], &n)
			m[f[0]] += n
		}
		return m
	}
	b, a := read(before), read(after)
	ran := map[string][][4]int{}
	for k, n := range a {
		if n <= b[k] {
			continue
		}
		i := strings.LastIndex(k, ":")
		file := filepath.Base(k[:i])
		var r [4]int
		fmt.Sscanf(k[i+1:], "%d.%d,%d.%d", &r[0], &r[1], &r[2], &r[3])
		ran[file] = append(ran[file], r)
	}
	return ran
}

func inBlock(ran map[string][][4]int, p token.Position) bool {
	for _, r := range ran[filepath.Base(p.Filename)] {
		if (p.Line > r[0] || p.Line == r[0] && p.Column >= r[1]) && (p.Line < r[2] || p.Line == r[2] && p.Column <= r[3]) {
			return true
		}
	}
	return false
}
