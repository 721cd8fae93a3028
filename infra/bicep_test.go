package infra

// A small Bicep reader, enough for the checks in infra_test.go without the
// Bicep compiler (which cannot run here): a lexer that understands comments,
// '…' strings with escapes and ${…} interpolation, and '''…''' strings; the
// top-level declarations (param, var, resource, module, output); and object
// literals (keys and value token ranges).

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type tokKind int

const (
	tIdent tokKind = iota
	tString
	tNumber
	tPunct
	tNewline
)

type token struct {
	kind tokKind
	text string // source text (strings: including quotes)
	lit  string // decoded string content when the string has no interpolation
	// interp reports a string with ${…} interpolation (lit is then empty).
	interp bool
	// exprs are the source of the string's ${…} expressions.
	exprs []string
	line  int
}

// lex splits Bicep source into tokens. Comments vanish; newlines are tokens
// because Bicep separates declarations and object properties with them.
func lex(src string) ([]token, error) {
	var toks []token
	line := 1
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\n':
			toks = append(toks, token{kind: tNewline, text: "\n", line: line})
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated block comment", line)
			}
			line += strings.Count(src[i:i+2+end+2], "\n")
			i += 2 + end + 2
		case strings.HasPrefix(src[i:], "'''"):
			end := strings.Index(src[i+3:], "'''")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated multi-line string", line)
			}
			body := src[i+3 : i+3+end]
			line += strings.Count(body, "\n")
			// Bicep drops the newline right after the opening quotes.
			body = strings.TrimPrefix(strings.TrimPrefix(body, "\r"), "\n")
			toks = append(toks, token{kind: tString, text: src[i : i+3+end+3], lit: body, line: line})
			i += 3 + end + 3
		case c == '\'':
			j, lit, interp, err := scanString(src, i)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			tok := token{kind: tString, text: src[i:j], lit: lit, interp: interp, line: line}
			if interp {
				tok.exprs = interpolations(src[i:j])
			}
			toks = append(toks, tok)
			line += strings.Count(src[i:j], "\n")
			i = j
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{kind: tIdent, text: src[i:j], line: line})
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '.') {
				j++
			}
			toks = append(toks, token{kind: tNumber, text: src[i:j], line: line})
			i = j
		default:
			toks = append(toks, token{kind: tPunct, text: string(c), line: line})
			i++
		}
	}
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// scanString reads a '…' string starting at src[i] and returns the index
// after its closing quote, its decoded content (empty when interpolated) and
// whether it has ${…} parts.
func scanString(src string, i int) (end int, lit string, interp bool, err error) {
	var b strings.Builder
	j := i + 1
	for j < len(src) {
		switch c := src[j]; {
		case c == '\\':
			if j+1 >= len(src) {
				return 0, "", false, fmt.Errorf("unterminated string")
			}
			switch e := src[j+1]; e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			default: // \\ \' \$
				b.WriteByte(e)
			}
			j += 2
		case c == '\'':
			if interp {
				return j + 1, "", true, nil
			}
			return j + 1, b.String(), false, nil
		case c == '$' && j+1 < len(src) && src[j+1] == '{':
			interp = true
			k, err := skipInterpolation(src, j+2)
			if err != nil {
				return 0, "", false, err
			}
			j = k
		case c == '\n':
			return 0, "", false, fmt.Errorf("newline in string")
		default:
			b.WriteByte(c)
			j++
		}
	}
	return 0, "", false, fmt.Errorf("unterminated string")
}

// skipInterpolation returns the index after the } that closes a ${ whose
// body starts at src[i]; the body may hold strings and braces of its own.
func skipInterpolation(src string, i int) (int, error) {
	depth := 1
	for i < len(src) {
		switch src[i] {
		case '{':
			depth++
			i++
		case '}':
			depth--
			i++
			if depth == 0 {
				return i, nil
			}
		case '\'':
			j, _, _, err := scanString(src, i)
			if err != nil {
				return 0, err
			}
			i = j
		default:
			i++
		}
	}
	return 0, fmt.Errorf("unterminated interpolation")
}

// interpolations returns the ${…} expressions of a '…' string's source.
func interpolations(str string) []string {
	var out []string
	for i := 1; i < len(str)-1; i++ {
		switch {
		case str[i] == '\\':
			i++
		case str[i] == '$' && str[i+1] == '{':
			end, err := skipInterpolation(str, i+2)
			if err != nil {
				return out
			}
			out = append(out, str[i+2:end-1])
			i = end - 1
		}
	}
	return out
}

// decl is a top-level declaration.
type decl struct {
	keyword string // param, var, resource, module, output
	name    string
	// typ is the param/output type, the resource type@version or the module path.
	typ      string
	existing bool
	// hasValue: a param with a default, or any var/resource/module/output.
	hasValue bool
	// value is the token range of the default or value (params, vars, outputs).
	value [2]int
	// body is the index of the { that opens a resource or module body (-1 if none).
	body int
	line int
}

type bicepFile struct {
	path  string
	toks  []token
	match map[int]int // index of ( [ { → index of its closer
	decls []decl
}

// parseBicep reads a file: tokens, bracket matching and top-level declarations.
func parseBicep(path string) (*bicepFile, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseBicepSource(path, string(src))
}

func parseBicepSource(path, src string) (*bicepFile, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := &bicepFile{path: path, toks: toks, match: map[int]int{}}
	var stack []int
	pairs := map[string]string{")": "(", "]": "[", "}": "{"}
	for i, t := range toks {
		if t.kind != tPunct {
			continue
		}
		switch t.text {
		case "(", "[", "{":
			stack = append(stack, i)
		case ")", "]", "}":
			if len(stack) == 0 || toks[stack[len(stack)-1]].text != pairs[t.text] {
				return nil, fmt.Errorf("%s:%d: unbalanced %q", path, t.line, t.text)
			}
			f.match[stack[len(stack)-1]] = i
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("%s:%d: unclosed %q", path, toks[stack[len(stack)-1]].line, toks[stack[len(stack)-1]].text)
	}
	if err := f.parseDecls(); err != nil {
		return nil, err
	}
	return f, nil
}

// lineEnd returns the index of the newline (or len) that ends the logical
// line starting at i, skipping over bracketed spans.
func (f *bicepFile) lineEnd(i int) int {
	for i < len(f.toks) {
		t := f.toks[i]
		if t.kind == tNewline {
			return i
		}
		if t.kind == tPunct && (t.text == "(" || t.text == "[" || t.text == "{") {
			i = f.match[i] + 1
			continue
		}
		i++
	}
	return i
}

func (f *bicepFile) parseDecls() error {
	i := 0
	for i < len(f.toks) {
		t := f.toks[i]
		if t.kind == tNewline {
			i++
			continue
		}
		end := f.lineEnd(i)
		if t.kind == tIdent {
			d, ok, err := f.parseDecl(i, end)
			if err != nil {
				return err
			}
			if ok {
				f.decls = append(f.decls, d)
			}
		}
		i = end + 1
	}
	return nil
}

func (f *bicepFile) parseDecl(i, end int) (decl, bool, error) {
	kw := f.toks[i].text
	switch kw {
	case "param", "var", "resource", "module", "output":
	default:
		return decl{}, false, nil
	}
	bad := func(what string) (decl, bool, error) {
		return decl{}, false, fmt.Errorf("%s:%d: %s declaration: %s", f.path, f.toks[i].line, kw, what)
	}
	if i+1 >= end || f.toks[i+1].kind != tIdent {
		return bad("missing name")
	}
	d := decl{keyword: kw, name: f.toks[i+1].text, body: -1, line: f.toks[i].line}
	j := i + 2
	switch kw {
	case "param", "output":
		if j >= end || f.toks[j].kind != tIdent {
			return bad("missing type")
		}
		d.typ = f.toks[j].text
		j++
		if j < end && f.toks[j].text == "?" {
			j++
		}
	case "resource", "module":
		if j >= end || f.toks[j].kind != tString || f.toks[j].interp {
			return bad("missing type or path string")
		}
		d.typ = f.toks[j].lit
		j++
		if j < end && f.toks[j].text == "existing" {
			d.existing = true
			j++
		}
	}
	if j < end && f.toks[j].text == "=" {
		d.hasValue = true
		d.value = [2]int{j + 1, end}
		for k := j + 1; k < end; k++ {
			if f.toks[k].text == "{" {
				d.body = k
				break
			}
		}
	} else if kw != "param" {
		return bad("missing =")
	}
	return d, true, nil
}

func (f *bicepFile) find(keyword, name string) (decl, bool) {
	for _, d := range f.decls {
		if d.keyword == keyword && d.name == name {
			return d, true
		}
	}
	return decl{}, false
}

func (f *bicepFile) all(keyword string) []decl {
	var out []decl
	for _, d := range f.decls {
		if d.keyword == keyword {
			out = append(out, d)
		}
	}
	return out
}

// resources returns the non-existing resources whose type (without the API
// version) is typ.
func (f *bicepFile) resources(typ string) []decl {
	var out []decl
	for _, d := range f.all("resource") {
		t, _, _ := strings.Cut(d.typ, "@")
		if t == typ && !d.existing {
			out = append(out, d)
		}
	}
	return out
}

type prop struct {
	key   string
	value [2]int // token range of the value
}

// props lists the properties of the object literal opened at toks[open].
func (f *bicepFile) props(open int) ([]prop, error) {
	if f.toks[open].text != "{" {
		return nil, fmt.Errorf("%s:%d: want an object, got %q", f.path, f.toks[open].line, f.toks[open].text)
	}
	closeAt := f.match[open]
	var out []prop
	i := open + 1
	for i < closeAt {
		t := f.toks[i]
		if t.kind == tNewline || t.text == "," {
			i++
			continue
		}
		if (t.kind != tIdent && t.kind != tString) || i+1 >= closeAt || f.toks[i+1].text != ":" {
			return nil, fmt.Errorf("%s:%d: want a property, got %q", f.path, t.line, t.text)
		}
		key := t.text
		if t.kind == tString {
			key = t.lit
		}
		start := i + 2
		j := start
		for j < closeAt {
			u := f.toks[j]
			if u.kind == tNewline || u.text == "," {
				break
			}
			if u.kind == tPunct && (u.text == "(" || u.text == "[" || u.text == "{") {
				j = f.match[j] + 1
				continue
			}
			j++
		}
		out = append(out, prop{key: key, value: [2]int{start, j}})
		i = j
	}
	return out, nil
}

// lookup follows a dotted property path from the object opened at open and
// returns the value's token range.
func (f *bicepFile) lookup(open int, path string) ([2]int, bool) {
	keys := strings.Split(path, ".")
	for n, k := range keys {
		ps, err := f.props(open)
		if err != nil {
			return [2]int{}, false
		}
		found := false
		for _, p := range ps {
			if p.key != k {
				continue
			}
			if n == len(keys)-1 {
				return p.value, true
			}
			if p.value[0] >= p.value[1] || f.toks[p.value[0]].text != "{" {
				return [2]int{}, false
			}
			open = p.value[0]
			found = true
			break
		}
		if !found {
			return [2]int{}, false
		}
	}
	return [2]int{}, false
}

// text renders a token range compactly: strings as their source, other
// tokens separated by single spaces where the source had them apart.
func (f *bicepFile) text(r [2]int) string {
	var parts []string
	for _, t := range f.toks[r[0]:r[1]] {
		if t.kind == tNewline {
			continue
		}
		parts = append(parts, t.text)
	}
	return strings.Join(parts, " ")
}

// stringValue returns the content of a value that is one plain string.
func (f *bicepFile) stringValue(r [2]int) (string, bool) {
	if r[1]-r[0] != 1 || f.toks[r[0]].kind != tString || f.toks[r[0]].interp {
		return "", false
	}
	return f.toks[r[0]].lit, true
}

// identValue returns the identifier a value consists of, if it is one.
func (f *bicepFile) identValue(r [2]int) (string, bool) {
	if r[1]-r[0] != 1 || f.toks[r[0]].kind != tIdent {
		return "", false
	}
	return f.toks[r[0]].text, true
}

// paramDefault returns the literal string default of a param.
func (f *bicepFile) paramDefault(name string) (string, bool) {
	d, ok := f.find("param", name)
	if !ok || !d.hasValue {
		return "", false
	}
	return f.stringValue(d.value)
}

// paramStrings returns the strings of a param whose default is an array
// literal of plain strings (nil otherwise).
func (f *bicepFile) paramStrings(name string) []string {
	d, ok := f.find("param", name)
	if !ok || !d.hasValue || d.value[0] >= d.value[1] || f.toks[d.value[0]].text != "[" {
		return nil
	}
	var out []string
	for _, t := range f.toks[d.value[0]+1 : f.match[d.value[0]]] {
		switch {
		case t.kind == tNewline:
		case t.kind == tString && !t.interp:
			out = append(out, t.lit)
		default:
			return nil
		}
	}
	return out
}

// bicepKeywords are identifiers that are not references.
var bicepKeywords = map[string]bool{
	"true": true, "false": true, "null": true, "existing": true, "if": true, "for": true, "in": true,
	"param": true, "var": true, "resource": true, "module": true, "output": true, "targetScope": true,
	"string": true, "int": true, "bool": true, "object": true, "array": true,
}

// undeclared lists identifiers used as values that no declaration, loop
// variable or keyword explains: the typos the Bicep compiler would reject.
// Identifiers inside ${…} interpolation are not checked.
func (f *bicepFile) undeclared() []string {
	declared := map[string]bool{}
	for _, d := range f.decls {
		declared[d.name] = true
	}
	for i, t := range f.toks {
		if t.text != "for" {
			continue
		}
		if i+1 < len(f.toks) && f.toks[i+1].text == "(" {
			for j := i + 2; j < len(f.toks) && f.toks[j].text != ")"; j++ {
				if f.toks[j].kind == tIdent {
					declared[f.toks[j].text] = true
				}
			}
		} else if i+1 < len(f.toks) && f.toks[i+1].kind == tIdent {
			declared[f.toks[i+1].text] = true
		}
	}
	var out []string
	for _, t := range f.toks {
		for _, e := range t.exprs {
			sub, err := parseBicepSource(f.path, e)
			if err != nil {
				out = append(out, fmt.Sprintf("%s:%d: interpolation %q: %v", f.path, t.line, e, err))
				continue
			}
			for _, u := range sub.undeclaredWith(declared) {
				out = append(out, fmt.Sprintf("%s:%d: %s is not declared", f.path, t.line, u.text))
			}
		}
	}
	for _, u := range f.undeclaredWith(declared) {
		out = append(out, fmt.Sprintf("%s:%d: %s is not declared", f.path, u.line, u.text))
	}
	return out
}

// undeclaredWith returns the identifier tokens of f (not of its
// interpolations) that are used as values but not in declared.
func (f *bicepFile) undeclaredWith(declared map[string]bool) []token {
	var out []token
	for i, t := range f.toks {
		if t.kind != tIdent || bicepKeywords[t.text] || declared[t.text] {
			continue
		}
		var prev, next token
		if i > 0 {
			prev = f.toks[i-1]
		}
		if i+1 < len(f.toks) {
			next = f.toks[i+1]
		}
		switch {
		case prev.text == "." || prev.text == "@": // property access, decorator
		case next.text == "(": // function call
		case next.text == ":" && (i == 0 || prev.kind == tNewline || prev.text == "{" || prev.text == ","): // object key
		default:
			out = append(out, t)
		}
	}
	return out
}

// FuzzParseBicep: the reader never panics, and what it accepts is
// consistent (brackets matched, declarations and object properties inside
// the token stream).
func FuzzParseBicep(f *testing.F) {
	paths, _ := filepath.Glob("*.bicep")
	mods, _ := filepath.Glob("modules/*.bicep")
	for _, p := range append(paths, mods...) {
		if src, err := os.ReadFile(p); err == nil {
			f.Add(string(src))
		}
	}
	f.Add("var s = 'a${b ? '}' : '{'}c'\n")
	f.Add("var m = '''\nx\n'''\n/* c */ // d\n")
	f.Fuzz(func(t *testing.T, src string) {
		bf, err := parseBicepSource("fuzz.bicep", src)
		if err != nil {
			return
		}
		for open, closeAt := range bf.match {
			if open >= closeAt || closeAt >= len(bf.toks) {
				t.Fatalf("bracket %d matched with %d of %d tokens", open, closeAt, len(bf.toks))
			}
		}
		for _, d := range bf.decls {
			if d.hasValue && (d.value[0] > d.value[1] || d.value[1] > len(bf.toks)) {
				t.Fatalf("%s %s: value range %v outside %d tokens", d.keyword, d.name, d.value, len(bf.toks))
			}
			if d.body >= 0 {
				if _, err := bf.props(d.body); err == nil {
					_ = bf.text([2]int{d.body, bf.match[d.body] + 1})
				}
			}
		}
		_ = bf.undeclared()
	})
}
