package chaos

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/emulator/batch"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
)

func killPid(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// taskEvent matches the Batch stand-in's per-attempt log lines.
var taskEvent = regexp.MustCompile(`msg="batch task (running|retrying|requeued)".*? task=([0-9A-Za-z_-]+)`)

// TaskAttempts counts, per task id, the attempts ("batch task running"),
// retries and requeues in Batch stand-in logs.
type TaskAttempts struct {
	Runs, Retries, Requeues int
}

// ParseBatchLog reads Batch stand-in log text.
func ParseBatchLog(r io.Reader) (map[string]TaskAttempts, error) {
	out := map[string]TaskAttempts{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := taskEvent.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		id := strings.ToLower(m[2])
		a := out[id]
		switch m[1] {
		case "running":
			a.Runs++
		case "retrying":
			a.Retries++
		case "requeued":
			a.Requeues++
		}
		out[id] = a
	}
	return out, sc.Err()
}

// executions fills the executions histogram from the Batch log.
func (h *harness) executions(rows []Row) {
	f, err := os.Open(filepath.Join(h.st.LogDir(), "batch.log"))
	if err != nil {
		h.note("executions: %v", err)
		return
	}
	defer f.Close()
	attempts, err := ParseBatchLog(f)
	if err != nil {
		h.note("executions: %v", err)
	}
	rep := h.report
	rep.Executions = map[string]int{}
	// Faults that can make a task run again: node loss, a killed ffmpeg,
	// storage going away (download/upload errors, rolled-back records).
	rerunFaults := rep.KillsByComponent["batch"] + rep.KillsByComponent[FaultFFmpeg] + rep.KillsByComponent["azurite"]
	for _, r := range rows {
		if r.Key == "" {
			continue
		}
		n := attempts[r.Key].Runs
		for _, k := range r.superseded {
			n += attempts[k].Runs
		}
		if n == 0 {
			continue // never reached Batch (rejected, ignored, input_missing, …)
		}
		rep.Executions[strconv.Itoa(n)]++
		rep.ExecutionsMax = max(rep.ExecutionsMax, n)
		if n > 1+taskMaxRetries+rerunFaults {
			rep.ExecutionsOverBound = append(rep.ExecutionsOverBound, fmt.Sprintf("%s: %d runs", r.ID, n))
		}
	}
}

// terminalWrite matches the handler's log lines written right after a
// terminal record (Sweep: "task settled", "task failed"; OnBlobCreated and
// Dispatch: "refused"), as relayed by the host with its own time= prefix.
var terminalWrite = regexp.MustCompile(`^time=(\S+) .*msg=\\?"?(?:task settled|task failed|refused)\b.*?\bkey=([0-9a-f]{32})`)

// ParseTerminalWrites returns, per key, when the pipeline logged a
// terminal record write (host log text).
func ParseTerminalWrites(r io.Reader) (map[string][]time.Time, error) {
	out := map[string][]time.Time{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		m := terminalWrite.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		out[m[2]] = append(out[m[2]], t)
	}
	return out, sc.Err()
}

// secretNeedles are assignments whose value must never be logged.
var secretNeedles = []string{"sig=", "AccountKey=", "SharedAccessKey=", "SharedAccessSignature sr=", "x-functions-key:"}

// redactedValue reports whether a logged value is a redaction marker.
func redactedValue(v string) bool {
	v = strings.Trim(v, `"'`)
	if v == "" {
		return true
	}
	up := strings.ToUpper(v)
	for _, m := range []string{"REDACTED", "[REDACTED]", "<REDACTED>", "***", "XXX", "…", "..."} {
		if strings.HasPrefix(up, m) {
			return true
		}
	}
	return false
}

// indexASCIIFold is strings.Index ignoring ASCII case in sub (which is
// ASCII), on the original bytes: lower-casing s first would change its
// length for some Unicode text and shift the indexes.
func indexASCIIFold(s, sub string) int {
	lower := func(b byte) byte {
		if 'A' <= b && b <= 'Z' {
			return b + 'a' - 'A'
		}
		return b
	}
outer:
	for i := 0; i+len(sub) <= len(s); i++ {
		for j := 0; j < len(sub); j++ {
			if lower(s[i+j]) != lower(sub[j]) {
				continue outer
			}
		}
		return i
	}
	return -1
}

// ScanSecrets looks for secrets in log text: literal secret values and
// key=value assignments of secret names whose value is not redacted. It
// returns "file:line: what" findings (never the secret itself).
func ScanSecrets(name string, r io.Reader, literals map[string]string) ([]string, int, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		for what, lit := range literals {
			if lit != "" && strings.Contains(text, lit) {
				out = append(out, fmt.Sprintf("%s:%d: %s", name, line, what))
			}
		}
		for _, n := range secretNeedles {
			rest := text
			for {
				i := indexASCIIFold(rest, n)
				if i < 0 {
					break
				}
				rest = rest[i+len(n):]
				end := strings.IndexAny(rest, "&; \t\"'\\,)")
				v := rest
				if end >= 0 {
					v = rest[:end]
				}
				if !redactedValue(v) {
					out = append(out, fmt.Sprintf("%s:%d: unredacted %s", name, line, strings.TrimSpace(n)))
				}
			}
		}
	}
	return out, line, sc.Err()
}

// scanSecrets scans every component log of the run.
func (h *harness) scanSecrets() {
	literals := map[string]string{
		"storage account key": azurite.Key,
		"Service Bus key":     servicebus.DefaultKey,
		"Batch token":         batch.DefaultToken,
		"host master key":     h.st.HostMasterKey(),
	}
	files, _ := filepath.Glob(filepath.Join(h.st.LogDir(), "*.log"))
	sort.Strings(files)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			h.note("secret scan: %v", err)
			continue
		}
		found, n, err := ScanSecrets(filepath.Base(f), fh, literals)
		fh.Close()
		if err != nil {
			h.note("secret scan %s: %v", f, err)
		}
		h.report.LogLines += n
		h.report.SecretsInLogs = append(h.report.SecretsInLogs, found...)
	}
	if len(h.report.SecretsInLogs) > 20 {
		h.report.Notes = append(h.report.Notes, fmt.Sprintf("%d secret findings; first 20 kept", len(h.report.SecretsInLogs)))
		h.report.SecretsInLogs = h.report.SecretsInLogs[:20]
	}
}

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "chaos run\tseed %d, %d valid + %d poison (%d ledger rows), %d faults\n", r.Seed, r.Files, r.Poison, r.Rows, r.Kills)
	fmt.Fprintln(tw, "invariant\tvalue\ttarget")
	row := func(name string, v, target int) {
		mark := ""
		if v != target {
			mark = "  <-- BREACH"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d%s\n", name, v, target, mark)
	}
	row("lost", r.Lost, 0)
	row("duplicate_outputs", r.DuplicateOutputs, 0)
	row("unexpected_outputs", r.UnexpectedOutputs, 0)
	row("wrongly_deleted_inputs", r.WronglyDeletedInputs, 0)
	row("wrong_outcome", r.WrongOutcome, 0)
	row("invalid_outputs", r.InvalidOutputs, 0)
	row("dlq_unresolved", r.DLQUnresolved, 0)
	row("secrets_in_logs", len(r.SecretsInLogs), 0)
	row("security_checks_failed", r.SecurityFailures(), 0)
	fmt.Fprintf(tw, "lost_to_storage_rollback\t%d\t(records Azurite lost on SIGKILL; not counted as lost)\n", r.LostToStorageRollback)
	fmt.Fprintf(tw, "unfinished\t%d\t(still in flight when the drain reached its cap; not counted as lost)\n", r.Unfinished)
	fmt.Fprintf(tw, "converted\t%d\t\n", r.Converted)
	fmt.Fprintf(tw, "outcomes\t%s\t\n", fmtMap(r.Outcomes))
	fmt.Fprintf(tw, "kills\t%s\t\n", fmtMap(r.KillsByComponent))
	if len(r.Missed) > 0 {
		fmt.Fprintf(tw, "faults missed\t%s\t(nothing to kill at that moment)\n", fmtMap(r.Missed))
	}
	fmt.Fprintf(tw, "event faults\t%s\t\n", fmtMap(r.EventFaults))
	fmt.Fprintf(tw, "executions/input\t%s\tmax %d\n", fmtMap(r.Executions), r.ExecutionsMax)
	fmt.Fprintf(tw, "dead letters\t%s\t\n", fmtMap(r.DLQByReason))
	fmt.Fprintf(tw, "drain\t%.1f s after the last fault\t(%.1f s in the drain phase; ended %s)\n", r.DrainSeconds, r.DrainWaitSeconds, r.DrainEnd)
	fmt.Fprintf(tw, "run\t%.1f s\t\n", r.RunSeconds)
	keys := make([]string, 0, len(r.RecoverySeconds))
	for k := range r.RecoverySeconds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := r.RecoverySeconds[k]
		fmt.Fprintf(tw, "restart %s\tp50 %.2f s, p95 %.2f s\tn=%d\n", k, p.P50, p.P95, p.N)
	}
	fmt.Fprintf(tw, "log lines scanned\t%d\t\n", r.LogLines)
	tw.Flush()
	for _, f := range r.Findings {
		fmt.Fprintf(w, "  %s %s: %s\n", f.Invariant, f.Row, f.Detail)
	}
	for _, s := range r.SecretsInLogs {
		fmt.Fprintf(w, "  secret: %s\n", s)
	}
	for _, c := range r.SecurityChecks {
		if !c.OK {
			fmt.Fprintf(w, "  security check failed: %s: %s\n", c.Name, c.Detail)
		}
	}
	for _, s := range r.ExecutionsOverBound {
		fmt.Fprintf(w, "  executions over bound: %s\n", s)
	}
	for _, e := range r.Timeline {
		fmt.Fprintf(w, "  t=%6.1fs %-10s %s\n", e.At, e.Fault, e.Detail)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func fmtMap(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, errA := strconv.Atoi(keys[i])
		b, errB := strconv.Atoi(keys[j])
		if errA == nil && errB == nil {
			return a < b
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
