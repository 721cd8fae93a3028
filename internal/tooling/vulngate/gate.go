package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// message is one object of govulncheck's JSON stream (protocol v1.0.0);
// only the parts the gate reads.
type message struct {
	Config *struct {
		ScannerVersion string `json:"scanner_version"`
		DB             string `json:"db"`
		GoVersion      string `json:"go_version"`
	} `json:"config"`
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *struct {
		OSV          string  `json:"osv"`
		FixedVersion string  `json:"fixed_version"`
		Trace        []frame `json:"trace"`
	} `json:"finding"`
}

type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
}

// vuln is one vulnerability the code reaches, in one module.
type vuln struct {
	id, module, version, fixed, summary string
}

func (v vuln) stdlib() bool { return v.module == "stdlib" || v.module == "toolchain" }

// result is what a govulncheck run found.
type result struct {
	db, goVersion string
	reached       []vuln
	unreached     int // vulnerabilities in imported packages or required modules only
}

// read parses the JSON stream.
func read(r io.Reader) (result, error) {
	var res result
	summaries := map[string]string{}
	reached := map[[2]string]vuln{}
	seen := map[string]bool{}
	dec := json.NewDecoder(r)
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return result{}, fmt.Errorf("read govulncheck output: %w", err)
		}
		switch {
		case m.Config != nil:
			res.db, res.goVersion = m.Config.DB, m.Config.GoVersion
		case m.OSV != nil:
			summaries[m.OSV.ID] = m.OSV.Summary
		case m.Finding != nil && len(m.Finding.Trace) > 0:
			f := m.Finding
			seen[f.OSV] = true
			top := f.Trace[0]
			if top.Function == "" {
				continue // package or module level: not called
			}
			reached[[2]string{f.OSV, top.Module}] = vuln{id: f.OSV, module: top.Module, version: top.Version, fixed: f.FixedVersion}
		}
	}
	ids := map[string]bool{}
	for _, v := range reached {
		v.summary = summaries[v.id]
		res.reached = append(res.reached, v)
		ids[v.id] = true
	}
	for id := range seen {
		if !ids[id] {
			res.unreached++
		}
	}
	sort.Slice(res.reached, func(i, j int) bool {
		a, b := res.reached[i], res.reached[j]
		if a.stdlib() != b.stdlib() {
			return !a.stdlib()
		}
		return a.id < b.id
	})
	return res, nil
}

// report prints the result and says whether the gate fails.
func (r result) report(w io.Writer, failStdlib bool) (fail bool) {
	fmt.Fprintf(w, "govulncheck against %s (%s):\n", r.db, r.goVersion)
	var modules, stdlib int
	for _, v := range r.reached {
		verdict := "FAIL"
		if v.stdlib() {
			stdlib++
			if !failStdlib {
				verdict = "warn"
			}
		} else {
			modules++
		}
		if verdict == "FAIL" {
			fail = true
		}
		fix := "no fixed version yet"
		if v.fixed != "" {
			fix = "fixed in " + v.fixed
		}
		fmt.Fprintf(w, "  %s %s %s@%s (%s): %s\n", verdict, v.id, v.module, v.version, fix, v.summary)
	}
	fmt.Fprintf(w, "%d reachable in modules, %d reachable in the Go standard library", modules, stdlib)
	if stdlib > 0 && !failStdlib {
		fmt.Fprint(w, " (warnings: a newer Go release fixes them; -stdlib=fail makes them fail)")
	}
	fmt.Fprintf(w, ", %d more in code that is imported but not called\n", r.unreached)
	return fail
}
