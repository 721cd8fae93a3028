package chaos

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/secret"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

// SecurityCheck is one negative test run against the live stack after the
// drain (docs/reliability.md#security-negative-tests).
type SecurityCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// securityChecks probes the running stack: keys and tokens are required,
// and every component listens on loopback only.
func (h *harness) securityChecks(ctx context.Context) []SecurityCheck {
	out := h.authChecks(ctx)
	out = append(out, h.sasCheck(ctx), h.telemetryCheck())
	return append(out, h.listenChecks()...)
}

// check is the result of one security check.
func check(name string, ok bool, format string, args ...any) SecurityCheck {
	return SecurityCheck{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)}
}

// authChecks: the host and Batch refuse a request without their key or
// token or with a wrong one, and serve one with the right one.
func (h *harness) authChecks(ctx context.Context) []SecurityCheck {
	client := &http.Client{Timeout: 10 * time.Second}
	host := h.st.HostURL()
	batchURL := h.st.BatchURL() + "/jobs?api-version=2024-07-01.20.0"
	probes := []struct {
		name, url string
		hdr       map[string]string
		code      int
	}{
		{"host: Status without a key is refused", host + "/api/status", nil, http.StatusUnauthorized},
		{"host: Status with a wrong key is refused", host + "/api/status?code=not-the-key", nil, http.StatusUnauthorized},
		{"host: Status with the master key is served", host + "/api/status", map[string]string{"x-functions-key": h.st.HostMasterKey()}, http.StatusOK},
		{"batch: no bearer token is refused", batchURL, nil, http.StatusUnauthorized},
		{"batch: a wrong bearer token is refused", batchURL, map[string]string{"Authorization": "Bearer not-the-token"}, http.StatusUnauthorized},
		{"batch: the configured token is accepted", batchURL, map[string]string{"Authorization": "Bearer " + h.st.BatchToken()}, http.StatusOK},
	}
	out := make([]SecurityCheck, 0, len(probes))
	for _, p := range probes {
		got, err := getStatus(ctx, client, p.url, p.hdr)
		out = append(out, check(p.name, err == nil && got == p.code, "got %d (%v), want %d", got, err, p.code))
	}
	return out
}

// getStatus is the HTTP status of a GET of u with the headers hdr.
func getStatus(ctx context.Context, client *http.Client, u string, hdr map[string]string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// sasCheck: the broker refuses a send signed with a wrong SAS key.
func (h *harness) sasCheck(ctx context.Context) SecurityCheck {
	wrong := strings.Replace(h.sbConn, "SharedAccessKey=", "SharedAccessKey=wrong", 1)
	err := func() error {
		c, err := azservicebus.NewClientFromConnectionString(wrong, nil)
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		s, err := c.NewSender(h.cfg.Queue, nil)
		if err != nil {
			return err
		}
		defer s.Close(context.WithoutCancel(ctx))
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		return s.SendMessage(sctx, &azservicebus.Message{Body: []byte("x")}, nil)
	}()
	var sbErr *azservicebus.Error
	ok := errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeUnauthorizedAccess
	return check("servicebus: a wrong SAS key is refused", ok, "send with a wrong key: %v", redactErr(err))
}

// telemetryCheck: Azurite must not phone home (it does unless
// --disableTelemetry).
func (h *harness) telemetryCheck() SecurityCheck {
	azLog, err := os.ReadFile(filepath.Join(h.st.LogDir(), "azurite.log"))
	return check("azurite: no telemetry (no outbound calls)", err == nil && !strings.Contains(string(azLog), "ApplicationInsights"),
		"azurite.log mentions ApplicationInsights: %v (read err %v)", strings.Contains(string(azLog), "ApplicationInsights"), err)
}

// listenChecks: every component listens on loopback only, and the Event
// Grid delivery client nowhere.
func (h *harness) listenChecks() []SecurityCheck {
	var out []SecurityCheck
	for _, c := range append(stack.Components(), "handler") {
		pid := h.st.Pid(c)
		if c == "handler" {
			pid = h.st.HandlerPid()
		}
		if pid == 0 {
			out = append(out, check(c+": listens on loopback only", false, "not running"))
			continue
		}
		addrs, err := listenAddrs(pid)
		if c == stack.EventGrid {
			// A client only: it must not listen at all.
			out = append(out, check(c+": listens nowhere (client only)", err == nil && len(addrs) == 0, "listening on %v (err %v)", addrs, err))
			continue
		}
		bad := []string{}
		for _, a := range addrs {
			if ip := net.ParseIP(a); ip == nil || !ip.IsLoopback() {
				bad = append(bad, a)
			}
		}
		out = append(out, check(c+": listens on loopback only", err == nil && len(addrs) > 0 && len(bad) == 0,
			"listening on %v (err %v)", addrs, err))
	}
	return out
}

func redactErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return secret.Redact(err.Error())
}

// listenAddrs returns the IP addresses a process (and its threads) has
// TCP sockets listening on, from /proc/<pid>/fd and /proc/net/tcp{,6}.
func listenAddrs(pid int) ([]string, error) {
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" || !inodes[fs[9]] { // 0A = LISTEN
				continue
			}
			host, _, _ := strings.Cut(fs[1], ":")
			if ip := procIP(host); ip != nil {
				out = append(out, ip.String())
			}
		}
	}
	return out, nil
}

// procIP decodes /proc/net/tcp's hex address (little-endian 32-bit words).
func procIP(s string) net.IP {
	b, err := hex.DecodeString(s)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil
	}
	ip := make(net.IP, len(b))
	for i := 0; i < len(b); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return ip
}
