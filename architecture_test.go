// Package ffpipe_test holds the checks that keep the repository's layers
// and sizes as docs/architecture.md describes them.
package ffpipe_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ffpipe/ffpipe"

// layer is one of the three kinds of code in docs/architecture.md.
type layer int

const (
	production layer = iota // cmd/handler, handlers/, internal/* outside emulator and tooling
	standIn                 // internal/emulator/*: one local stand-in per Azure service
	tooling                 // internal/tooling/*, cmd/ffpipe: drives the stand-ins
	outside                 // not part of the module, or a test-only package such as infra
)

func (l layer) String() string {
	return [...]string{"production", "stand-in", "tooling", "outside"}[l]
}

// layerOf places a package path of this module in its layer.
func layerOf(path string) layer {
	rel, ok := strings.CutPrefix(path, module+"/")
	switch {
	case !ok:
		return outside
	case rel == "cmd/ffpipe" || strings.HasPrefix(rel, "internal/tooling/"):
		return tooling
	case strings.HasPrefix(rel, "internal/emulator/"):
		return standIn
	case rel == "cmd/handler" || rel == "handlers" || strings.HasPrefix(rel, "handlers/") ||
		strings.HasPrefix(rel, "internal/"):
		return production
	}
	return outside
}

// standInOf is the stand-in a package belongs to: internal/emulator/<name>.
func standInOf(path string) string {
	rel := strings.TrimPrefix(path, module+"/internal/emulator/")
	name, _, _ := strings.Cut(rel, "/")
	return name
}

// pkg is the part of `go list -json` the rules read.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages, want the whole module", len(pkgs))
	}
	return pkgs
}

// ffpipeImports keeps the imports that belong to this module.
func ffpipeImports(imports []string) []string {
	var out []string
	for _, imp := range imports {
		if strings.HasPrefix(imp, module+"/") {
			out = append(out, imp)
		}
	}
	return out
}

// importRule says why an import from one package to another is refused, or
// "" when it is allowed. test is true for imports of _test.go files.
// leaves are the production packages that import no package of this module.
func importRule(from, to string, test bool, leaves map[string]bool) string {
	lf, lt := layerOf(from), layerOf(to)
	switch {
	case lt == tooling && lf != tooling:
		return "only tooling imports tooling"
	case lf == production && lt == standIn && !test:
		return "production code never imports a stand-in (tests may, to run against one)"
	case lf == standIn && lt == production && !test && !leaves[to]:
		return "a stand-in models an Azure service, not ffpipe: it may import only production's leaf helpers (packages that import nothing of ffpipe)"
	case lf == standIn && lt == standIn && !test && standInOf(from) != standInOf(to) &&
		standInOf(to) != "azurite":
		return "stand-ins are independent of each other, except that they may use the Azurite launcher (Blob Storage)"
	}
	return ""
}

// The layers of docs/architecture.md: production never imports a stand-in
// or tooling; stand-ins never import tooling, nor each other (Azurite
// aside), nor ffpipe's domain packages.
func TestLayers(t *testing.T) {
	pkgs := listPackages(t)
	leaves := map[string]bool{}
	for _, p := range pkgs {
		if layerOf(p.ImportPath) == production && len(ffpipeImports(p.Imports)) == 0 {
			leaves[p.ImportPath] = true
		}
	}
	for _, p := range pkgs {
		for _, imports := range []struct {
			list []string
			test bool
		}{{p.Imports, false}, {p.TestImports, true}, {p.XTestImports, true}} {
			for _, imp := range ffpipeImports(imports.list) {
				if why := importRule(p.ImportPath, imp, imports.test, leaves); why != "" {
					kind := "imports"
					if imports.test {
						kind = "test imports"
					}
					t.Errorf("%s (%s) %s %s (%s): %s", strings.TrimPrefix(p.ImportPath, module+"/"), layerOf(p.ImportPath),
						kind, strings.TrimPrefix(imp, module+"/"), layerOf(imp), why)
				}
			}
		}
	}
}

// The rule itself, on the cases that matter, so a change to it is seen.
func TestImportRule(t *testing.T) {
	leaves := map[string]bool{module + "/internal/fsutil": true}
	tests := []struct {
		from, to string
		test     bool
		allowed  bool
	}{
		{"handlers", "internal/storage", false, true},
		{"handlers", "internal/emulator/batch", false, false},
		{"handlers", "internal/emulator/batch/batchtest", true, true},
		{"cmd/handler", "internal/tooling/stack", false, false},
		{"internal/batch", "internal/tooling/media", true, false},
		{"internal/emulator/eventgrid", "internal/emulator/azurite", false, true},
		{"internal/emulator/eventgrid", "internal/fsutil", false, true},
		{"internal/emulator/eventgrid", "internal/storage", false, false},
		{"internal/emulator/eventgrid", "handlers", true, true},
		{"internal/emulator/funchost", "internal/emulator/servicebus", false, false},
		{"internal/emulator/funchost", "internal/emulator/servicebus/sbtest", true, true},
		{"internal/emulator/servicebus", "internal/emulator/servicebus/store", false, true},
		{"internal/emulator/batch", "internal/tooling/stack", true, false},
		{"internal/tooling/stack", "internal/emulator/funchost", false, true},
		{"internal/tooling/bench", "internal/tooling/media", false, true},
		{"cmd/ffpipe", "internal/tooling/bench", false, true},
		{"cmd/ffpipe", "handlers", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.from+"->"+tt.to, func(t *testing.T) {
			why := importRule(module+"/"+tt.from, module+"/"+tt.to, tt.test, leaves)
			if got := why == ""; got != tt.allowed {
				t.Errorf("allowed = %v (%q), want %v", got, why, tt.allowed)
			}
		})
	}
}

// maxFileLines is issue 13's bound on a non-test, hand-written Go file.
const maxFileLines = 700

// knownLongFiles are being split by the helper named; the lead empties this
// list once they land.
var knownLongFiles = map[string]string{}

var generated = regexp.MustCompile(`^// Code generated .* DO NOT EDIT\.$`)

// No non-test Go file is over maxFileLines lines, except generated code.
func TestFileLength(t *testing.T) {
	long := map[string]int{}
	err := walkSources(func(path string) error {
		n, gen, err := countLines(path)
		if err != nil {
			return err
		}
		if n > maxFileLines && !gen {
			long[path] = n
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, n := range long {
		if owner, ok := knownLongFiles[path]; ok {
			t.Logf("%s: %d lines, over %d: being split by %s", path, n, maxFileLines, owner)
			continue
		}
		t.Errorf("%s: %d lines, want at most %d: split it by responsibility", path, n, maxFileLines)
	}
	// A listed file that is short now is only reported: the helper who
	// split it need not touch this file, and the lead empties the list.
	for path, owner := range knownLongFiles {
		if _, ok := long[path]; !ok {
			t.Logf("%s is listed as a known long file (%s) but is not over %d lines: remove it from knownLongFiles", path, owner, maxFileLines)
		}
	}
}

// walkSources calls fn with the slash path of every non-test Go file of
// the repository, skipping hidden directories, node_modules and testdata.
func walkSources(fn func(path string) error) error {
	return filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		return fn(filepath.ToSlash(path))
	})
}

// maxFuncLines is the style's bound on a non-test function, from its
// func keyword to its closing brace.
const maxFuncLines = 80

// knownLongFuncs ("path:name", name as Receiver.Method for methods) may
// list a function over maxFuncLines while a change that owns it splits it.
// It is empty: every function is within the bound. The list only shrinks:
// TestFuncLength fails for a listed function that is no longer over it.
var knownLongFuncs = map[string]string{}

// No non-test function in the repository's Go files is over maxFuncLines
// lines, generated code aside.
func TestFuncLength(t *testing.T) {
	long := map[string]int{}
	err := walkSources(func(path string) error {
		funcs, err := longFuncs(path, maxFuncLines)
		for name, n := range funcs {
			long[name] = n
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(long)) {
		if why, ok := knownLongFuncs[name]; ok {
			t.Logf("%s: %d lines, over %d: %s", name, long[name], maxFuncLines, why)
			continue
		}
		t.Errorf("%s: %d lines, want at most %d: split it into functions that each do one thing", name, long[name], maxFuncLines)
	}
	for _, name := range slices.Sorted(maps.Keys(knownLongFuncs)) {
		if _, ok := long[name]; !ok {
			t.Errorf("%s is in knownLongFuncs but is not over %d lines (or is gone): remove it from the list", name, maxFuncLines)
		}
	}
}

// longFuncs are the functions of the Go file at path longer than limit
// lines, by "path:name", unless the file is generated.
func longFuncs(path string, limit int) (map[string]int, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	if ast.IsGenerated(f) {
		return nil, nil
	}
	long := map[string]int{}
	for _, decl := range f.Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		if n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1; n > limit {
			long[path+":"+funcName(fd)] = n
		}
	}
	return long, nil
}

// funcName is fd's name, Receiver.Method for a method.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	typ := fd.Recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	switch x := typ.(type) {
	case *ast.IndexExpr: // a generic receiver, T[P]
		typ = x.X
	case *ast.IndexListExpr:
		typ = x.X
	}
	return fmt.Sprint(typ) + "." + fd.Name.Name
}

// The length rule itself, on source whose lengths are known, so a change
// to how lines are counted is seen.
func TestLongFuncs(t *testing.T) {
	body := func(lines int) string { return strings.Repeat("\t_ = 0\n", lines-2) }
	src := "package p\n\ntype T[P any] struct{}\n\n" +
		"func atBound() {\n" + body(80) + "}\n\n" +
		"func over() {\n" + body(81) + "}\n\n" +
		"func (t *T[P]) method() {\n" + body(90) + "}\n\n" +
		"func (T[P]) value() {\n" + body(81) + "}\n"
	dir := t.TempDir()
	path := filepath.ToSlash(filepath.Join(dir, "p.go"))
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := longFuncs(path, maxFuncLines)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{path + ":over": 81, path + ":T.method": 90, path + ":T.value": 81}
	if !maps.Equal(got, want) {
		t.Errorf("longFuncs: got %v, want %v", got, want)
	}
	gen := "// Code generated by hand. DO NOT EDIT.\n\n" + src
	if err := os.WriteFile(path, []byte(gen), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := longFuncs(path, maxFuncLines); err != nil || len(got) != 0 {
		t.Errorf("longFuncs of generated code: got %v, %v, want none", got, err)
	}
}

// countLines counts a file's lines and reports whether it carries Go's
// generated-code marker.
func countLines(path string) (int, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n, gen := 0, false
	for sc.Scan() {
		n++
		if !gen && generated.Match(sc.Bytes()) {
			gen = true
		}
	}
	return n, gen, sc.Err()
}
