package ffpipe_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goFiles returns the repository's Go files (not node_modules, not
// testdata).
func goFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestDocsCitedExist: every docs/….md a Go file cites is in the
// repository, and no comment cites a document outside it (the design
// notes the code was written from live outside the repository; what the
// code relies on belongs in docs/).
func TestDocsCitedExist(t *testing.T) {
	cited := regexp.MustCompile(`docs/[A-Za-z0-9_./-]+\.md`)
	outside := regexp.MustCompile(`reliability-security\.md|functions-custom-handlers\.md|servicebus-amqp\.md|azure-batch\.md|/work/shared|docs/readme/|§`)
	for _, f := range goFiles(t) {
		if f == "docs_test.go" {
			continue // the patterns above
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range cited.FindAllString(string(b), -1) {
			if _, err := os.Stat(m); err != nil {
				t.Errorf("%s cites %s, which does not exist", f, m)
			}
		}
		for i, line := range strings.Split(string(b), "\n") {
			if outside.MatchString(line) {
				t.Errorf("%s:%d cites a document outside the repository: %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
}

// TestReadmeLinksEveryDoc: the README's documentation table links every
// page of docs/, so a newcomer finds each from the README.
func TestReadmeLinksEveryDoc(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	pages, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		if !strings.Contains(string(readme), "("+p+")") {
			t.Errorf("README.md does not link %s: add a row to its documentation table", p)
		}
	}
}
