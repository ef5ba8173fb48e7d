// Problems: what is wrong with a configuration and where, collected rather
// than returned one at a time, so that one run of check-config shows all.

package config

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a configuration: where it is (file, line
// and dotted field path, any of which may be empty) and why it is wrong.
type Problem struct {
	File   string // file name given to Parse or Load; "" for run-time checks of a built Config
	Line   int    // 1-based line in File; 0 when the value did not come from a file
	Field  string // dotted path such as "tcpcrypt.teps[1]"; "" for YAML syntax errors
	Reason string
}

// String formats the problem as "file:line: field: reason", leaving out the
// parts that are unknown.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteByte(':')
	}
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:", p.Line)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Reason)
	return b.String()
}

// Error lists every problem found in a configuration.
type Error struct {
	Problems []Problem
}

// Error returns all problems, one per line, sorted by line (problems without
// a line last, in the order they were found).
func (e *Error) Error() string {
	ps := append([]Problem(nil), e.Problems...)
	sortProblems(ps)
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems by line; line 0 (no position) sorts last.
// The sort is stable so problems on one line keep the order of the fields.
func sortProblems(ps []Problem) {
	key := func(p Problem) int {
		if p.Line <= 0 {
			return int(^uint(0) >> 1)
		}
		return p.Line
	}
	sort.SliceStable(ps, func(i, j int) bool { return key(ps[i]) < key(ps[j]) })
}
