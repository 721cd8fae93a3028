// Command ffpipe is the project CLI: the local stack (dev, demo, the
// stand-ins), clients (upload, submit, status), pool management, packaging,
// benchmarks and the chaos harness.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand. name may contain a space ("emulator batch").
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands lists every subcommand. Each lives in its own file and adds
// itself from an init function, so adding a command touches one file.
var commands []command

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "ffpipe:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// Longest matching name first so "emulator batch" wins over "emulator".
	sorted := append([]command(nil), commands...)
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i].name) > len(sorted[j].name) })
	joined := strings.Join(args, " ")
	for _, c := range sorted {
		if joined == c.name || strings.HasPrefix(joined, c.name+" ") {
			n := len(strings.Fields(c.name))
			return c.run(ctx, args[n:], stdout, stderr)
		}
	}
	usage(stderr)
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		return nil
	}
	return fmt.Errorf("unknown command %q", strings.Join(args, " "))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: ffpipe <command> [flags]\n\ncommands:")
	sorted := append([]command(nil), commands...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-20s %s\n", c.name, c.summary)
	}
}
