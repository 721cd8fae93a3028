// Command handler is the test custom handler for package funchost. It
// listens on FUNCTIONS_CUSTOMHANDLER_PORT and forwards every invocation to
// the test's control server ($TEST_CONTROL_URL), which decides the reply.
//
// Forwarded as POST $TEST_CONTROL_URL with JSON
// {"path","method","headers","body","pid","env":{...},"args":[...]}; the
// control reply's status, Content-Type and body are copied back. A control
// reply header X-Test-Exit: <code> makes the handler exit without replying.
// With TEST_TERM_FILE set, a SIGTERM makes it write that file and exit 0 (a
// probe for how the host stops it).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	port := os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT")
	control := os.Getenv("TEST_CONTROL_URL")
	if port == "" || control == "" {
		fmt.Fprintln(os.Stderr, "FUNCTIONS_CUSTOMHANDLER_PORT and TEST_CONTROL_URL are required")
		os.Exit(2)
	}
	if os.Getenv("TEST_EXIT_AT_START") != "" {
		fmt.Fprintln(os.Stderr, "exiting at start as asked")
		os.Exit(3)
	}
	if f := os.Getenv("TEST_TERM_FILE"); f != "" {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		go func() {
			<-term
			_ = os.WriteFile(f, []byte("SIGTERM\n"), 0o644)
			os.Exit(0)
		}()
	}
	fmt.Println("test handler starting on port", port)
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && (strings.HasPrefix(k, "FUNCTIONS_") || strings.HasPrefix(k, "TEST_") || strings.HasPrefix(k, "App")) {
			env[k] = v
		}
	}
	wd, _ := os.Getwd()
	env["PWD"] = wd
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		body, _ := io.ReadAll(r.Body)
		fwd, _ := json.Marshal(map[string]any{
			"path": r.URL.RequestURI(), "method": r.Method, "headers": r.Header,
			"body": string(body), "pid": os.Getpid(), "env": env, "args": os.Args[1:],
		})
		resp, err := http.Post(control, "application/json", bytes.NewReader(fwd))
		if err != nil {
			fmt.Fprintln(os.Stderr, "control:", err)
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if code := resp.Header.Get("X-Test-Exit"); code != "" {
			n, _ := strconv.Atoi(code)
			fmt.Fprintln(os.Stderr, "exiting as asked")
			os.Exit(n)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(rb)
	})
	if err := http.ListenAndServe("127.0.0.1:"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
