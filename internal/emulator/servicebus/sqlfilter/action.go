package sqlfilter

import "strings"

// Action is a parsed rule action (SqlRuleAction): SET and REMOVE
// statements run in order on the copy of a message a rule selected
// (MicrosoftDocs
// articles/service-bus-messaging/service-bus-messaging-sql-rule-action.md).
// It is immutable and safe for concurrent use.
type Action struct {
	src   string
	stmts []stmt
}

type stmt struct {
	off    int
	remove bool
	name   string // a user property, as written
	value  *expr  // SET only
}

// Change is one effect of an action on a message's application
// properties: a new value for Name, or its removal.
type Change struct {
	Name   string
	Value  any
	Remove bool
}

// ParseAction parses an action: one or more "SET property = expression"
// or "REMOVE property" statements, each optionally ended by ';'.
// Expressions are those of filters (without conditions). Only user
// properties can be set or removed: an action on a sys. property is
// refused, as are the parse errors of [Parse], each with its position.
func ParseAction(src string) (*Action, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	a := &Action{src: src}
	for p.peek().kind != tEOF {
		t := p.next()
		var st stmt
		switch {
		case t.is("set"):
			st, err = p.parseSet(t)
		case t.is("remove"):
			st, err = p.parseTarget(t, true)
		default:
			return nil, p.fail(t, "expected SET or REMOVE, found %s", t)
		}
		if err != nil {
			return nil, err
		}
		a.stmts = append(a.stmts, st)
		for p.peek().op(";") {
			p.next()
		}
	}
	if len(a.stmts) == 0 {
		return nil, errorAt(src, len(src), "empty action: expected SET or REMOVE")
	}
	return a, nil
}

func (p *parser) parseSet(t token) (stmt, error) {
	st, err := p.parseTarget(t, false)
	if err != nil {
		return st, err
	}
	if _, err := p.expectOp("="); err != nil {
		return st, err
	}
	v, err := p.parseAdditive()
	if err != nil {
		return st, err
	}
	if v.kind == kBool && v.op != opConst {
		return st, errorAt(p.src, v.off, "SET takes a value, found a condition")
	}
	st.value = v
	return st, nil
}

// parseTarget parses the property a statement changes.
func (p *parser) parseTarget(t token, remove bool) (stmt, error) {
	target := p.next()
	prop, err := p.parseProperty(target)
	if err != nil {
		return stmt{}, err
	}
	if prop.sys {
		verb := "SET"
		if remove {
			verb = "REMOVE"
		}
		return stmt{}, errorAt(p.src, prop.off, "%s on a system property is not supported by this emulator; use a user property", verb)
	}
	return stmt{off: t.off, remove: remove, name: prop.name}, nil
}

// String returns the action as written.
func (a *Action) String() string { return a.src }

// Apply runs the statements in order on a copy of m (later statements see
// the effect of earlier ones) and returns the copy and the changes to make
// to the message's application properties. An evaluation failure returns
// an *EvalError.
func (a *Action) Apply(m *Message) (*Message, []Change, error) {
	out := m.Clone()
	var changes []Change
	for _, st := range a.stmts {
		c := Change{Name: st.name, Remove: st.remove}
		if st.remove {
			out.DeleteUser(st.name)
		} else {
			v, err := eval(st.value, out)
			if err != nil {
				return nil, nil, err
			}
			c.Value = v
			out.SetUser(st.name, v)
		}
		// The last change to a property (names ignore case) is the one that counts.
		for i := range changes {
			if strings.EqualFold(changes[i].Name, c.Name) {
				changes = append(changes[:i], changes[i+1:]...)
				break
			}
		}
		changes = append(changes, c)
	}
	return out, changes, nil
}
