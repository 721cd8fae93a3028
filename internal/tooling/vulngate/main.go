// Command vulngate reads `govulncheck -format json` on stdin and decides
// whether `make lint` passes. It prints one line per vulnerability that
// the code reaches (a symbol-level finding: govulncheck found a call path
// to the vulnerable function), and fails on:
//
//   - any such vulnerability in a module (go.mod): the fix is a `go get` of
//     the fixed version, so the build must not go on without it;
//   - one in the Go standard library only with -stdlib=fail. By default it
//     is reported as a warning naming the Go release that fixes it: the
//     toolchain is the machine's (CI's image), not something `go get`
//     can change, and failing every build until the image moves would
//     hide the other checks.
//
// Findings the code does not reach (an imported package or a required
// module only) are counted, not listed: govulncheck -show verbose has them.
//
// Usage: go tool govulncheck -format json ./... | go run ./internal/tooling/vulngate [-stdlib=warn|fail]
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	stdlib := flag.String("stdlib", "warn", "what a reachable standard-library vulnerability does: warn or fail")
	flag.Parse()
	if *stdlib != "warn" && *stdlib != "fail" {
		fmt.Fprintf(os.Stderr, "vulngate: -stdlib=%q: want warn or fail\n", *stdlib)
		os.Exit(2)
	}
	r, err := read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulngate:", err)
		os.Exit(2)
	}
	if fail := r.report(os.Stdout, *stdlib == "fail"); fail {
		os.Exit(1)
	}
}
