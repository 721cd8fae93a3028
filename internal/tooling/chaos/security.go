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
	var out []SecurityCheck
	add := func(name string, ok bool, format string, args ...any) {
		out = append(out, SecurityCheck{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}
	client := &http.Client{Timeout: 10 * time.Second}
	status := func(u string, hdr map[string]string) (int, error) {
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
	want := func(name, u string, hdr map[string]string, code int) {
		got, err := status(u, hdr)
		add(name, err == nil && got == code, "got %d (%v), want %d", got, err, code)
	}
	host := h.st.HostURL()
	want("host: Status without a key is refused", host+"/api/status", nil, http.StatusUnauthorized)
	want("host: Status with a wrong key is refused", host+"/api/status?code=not-the-key", nil, http.StatusUnauthorized)
	want("host: Status with the master key is served", host+"/api/status", map[string]string{"x-functions-key": h.st.HostMasterKey()}, http.StatusOK)
	batchURL := h.st.BatchURL() + "/jobs?api-version=2024-07-01.20.0"
	want("batch: no bearer token is refused", batchURL, nil, http.StatusUnauthorized)
	want("batch: a wrong bearer token is refused", batchURL, map[string]string{"Authorization": "Bearer not-the-token"}, http.StatusUnauthorized)
	want("batch: the configured token is accepted", batchURL, map[string]string{"Authorization": "Bearer " + h.st.BatchToken()}, http.StatusOK)

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
	add("servicebus: a wrong SAS key is refused", ok, "send with a wrong key: %v", redactErr(err))

	// Azurite must not phone home (it does unless --disableTelemetry).
	azLog, err := os.ReadFile(filepath.Join(h.st.LogDir(), "azurite.log"))
	add("azurite: no telemetry (no outbound calls)", err == nil && !strings.Contains(string(azLog), "ApplicationInsights"),
		"azurite.log mentions ApplicationInsights: %v (read err %v)", strings.Contains(string(azLog), "ApplicationInsights"), err)

	for _, c := range append(stack.Components(), "handler") {
		pid := h.st.Pid(c)
		if c == "handler" {
			pid = h.st.HandlerPid()
		}
		if pid == 0 {
			add(c+": listens on loopback only", false, "not running")
			continue
		}
		addrs, err := listenAddrs(pid)
		if c == stack.EventGrid {
			// A client only: it must not listen at all.
			add(c+": listens nowhere (client only)", err == nil && len(addrs) == 0, "listening on %v (err %v)", addrs, err)
			continue
		}
		bad := []string{}
		for _, a := range addrs {
			if ip := net.ParseIP(a); ip == nil || !ip.IsLoopback() {
				bad = append(bad, a)
			}
		}
		add(c+": listens on loopback only", err == nil && len(addrs) > 0 && len(bad) == 0,
			"listening on %v (err %v)", addrs, err)
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
