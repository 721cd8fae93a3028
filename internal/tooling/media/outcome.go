package media

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ffpipe/ffpipe/internal/failure"
)

// Outcome is what the pipeline did with one input, as a harness observes it
// after draining. Values are bits so an Expect can accept several.
type Outcome uint8

const (
	// Done: converted; a valid output blob exists, a "done" record, the
	// input deleted.
	Done Outcome = 1 << iota
	// Failed: dispatched, then one terminal "failed" record (from Dispatch
	// or Sweep), no output blob, the input kept or quarantined.
	Failed
	// Rejected: OnBlobCreated wrote a failure record and sent no message;
	// no Batch task ever existed (ARCHITECTURE.md: size 0 or above the cap).
	Rejected
	// Ignored: nothing at all (not an allowed suffix): no record, no task,
	// no output, the input untouched.
	Ignored
)

var outcomeNames = []struct {
	o    Outcome
	name string
}{{Done, "done"}, {Failed, "failed"}, {Rejected, "rejected"}, {Ignored, "ignored"}}

// String is "done", "failed", … or an alternation such as "done|failed".
func (o Outcome) String() string {
	var parts []string
	for _, n := range outcomeNames {
		if o&n.o != 0 {
			parts = append(parts, n.name)
		}
	}
	if rest := o &^ (Done | Failed | Rejected | Ignored); rest != 0 || len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("Outcome(%d)", uint8(rest)))
	}
	return strings.Join(parts, "|")
}

// MarshalText writes String(), so ledgers in JSON read "done|failed".
func (o Outcome) MarshalText() ([]byte, error) {
	if o == 0 || o&^(Done|Failed|Rejected|Ignored) != 0 {
		return nil, fmt.Errorf("marshal outcome %d: %w", uint8(o), ErrBadSpec)
	}
	return []byte(o.String()), nil
}

// UnmarshalText reads what MarshalText writes.
func (o *Outcome) UnmarshalText(text []byte) error {
	v, err := ParseOutcome(string(text))
	if err != nil {
		return err
	}
	*o = v
	return nil
}

// ParseOutcome reads "done", "failed", "rejected", "ignored" or an
// alternation of them joined by "|" (case-insensitive, spaces allowed).
func ParseOutcome(s string) (Outcome, error) {
	var o Outcome
	for part := range strings.SplitSeq(s, "|") {
		part = strings.TrimSpace(part)
		found := false
		for _, n := range outcomeNames {
			if strings.EqualFold(part, n.name) {
				o |= n.o
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("parse outcome %q: %w: unknown %q", s, ErrBadSpec, part)
		}
	}
	return o, nil
}

// Has reports whether every bit of x is in o.
func (o Outcome) Has(x Outcome) bool { return x != 0 && o&x == x }

// Expect is the set of acceptable outcomes for one input.
type Expect struct {
	// Outcome is one outcome or several alternatives (Done|Failed).
	Outcome Outcome
	// ReasonContains must occur in the failure record's reason when the
	// observed outcome is Failed or Rejected; "" accepts any reason. The
	// default expectations use the pipeline's reason codes
	// (docs/reasons.md); PoisonOptions.Expect may override one with any
	// text a pipeline words otherwise.
	ReasonContains failure.Reason
}

// Allows reports whether an observed outcome (exactly one bit) and the
// record's reason (ignored for Done and Ignored) meet the expectation.
func (e Expect) Allows(got Outcome, reason string) bool {
	if got == 0 || got&(got-1) != 0 || !e.Outcome.Has(got) {
		return false
	}
	if got == Failed || got == Rejected {
		return strings.Contains(reason, string(e.ReasonContains))
	}
	return true
}

func (e Expect) String() string {
	if e.ReasonContains == "" || !e.Outcome.Has(Failed) && !e.Outcome.Has(Rejected) {
		return e.Outcome.String()
	}
	return fmt.Sprintf("%s (reason contains %q)", e.Outcome, e.ReasonContains)
}

// Azure blob name limits ([ST-NAMING]).
const (
	MaxBlobNameChars = 1024
	MaxBlobSegments  = 254
)

// ValidBlobName checks a name against Azure's rules for a flat-namespace
// account: valid UTF-8, 1–1,024 characters, at most 254 "/"-separated
// segments, no control characters (U+0000–U+001F, U+007F), and no trailing
// "." or "/" (allowed by the service but documented as "avoid", and
// normalised away by some clients).
func ValidBlobName(name string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("blob name %q: not valid UTF-8", name)
	}
	n := utf8.RuneCountInString(name)
	if n == 0 || n > MaxBlobNameChars {
		return fmt.Errorf("blob name of %d characters: want 1–%d", n, MaxBlobNameChars)
	}
	if segs := strings.Count(name, "/") + 1; segs > MaxBlobSegments {
		return fmt.Errorf("blob name with %d segments: want at most %d", segs, MaxBlobSegments)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("blob name %q: control character %U", name, r)
		}
	}
	if strings.HasSuffix(name, ".") || strings.HasSuffix(name, "/") {
		return fmt.Errorf("blob name %q: ends in %q", name, name[len(name)-1:])
	}
	return nil
}
