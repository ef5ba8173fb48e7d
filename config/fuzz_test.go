package config

import (
	"os"
	"testing"
)

// FuzzParse: any input yields a valid Config or an *Error with at least one
// problem, never a panic.
func FuzzParse(f *testing.F) {
	for _, tc := range badCases {
		f.Add([]byte(tc.yaml))
	}
	if data, err := os.ReadFile("../deploy/config.example.yaml"); err == nil {
		f.Add(data)
	}
	f.Add(defaultYAML)
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("bypass:\n  ports: &p [1, 2]\n  hosts: *p\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			e, ok := err.(*Error)
			if !ok || len(e.Problems) == 0 || c != nil {
				t.Fatalf("bad error %T %v", err, err)
			}
			return
		}
		if probs := c.Validate(); len(probs) != 0 {
			t.Fatalf("accepted config fails Validate: %v", probs)
		}
		c.Bypass()
	})
}
