package filter

import (
	"errors"
	"testing"
)

func FuzzCompile(f *testing.F) {
	for _, c := range matchCases {
		f.Add(c.expr, "1", "x")
	}
	f.Add("a > 0x1p3 or b not between -1 and 2.5e3 -- c\n", "NaN", "")
	f.Add("((a)) in ('a', '''')", "٣", "true")
	f.Fuzz(func(t *testing.T, expr, a, b string) {
		e, err := Compile(expr)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Compile(%q): %v does not wrap ErrSyntax", expr, err)
			}
			return
		}
		if e.String() != expr {
			t.Fatalf("String() = %q, want %q", e.String(), expr)
		}
		for _, get := range []func(string) (string, bool){
			props(), props("a", a, "b", b), props("a", b, "b", a, "v", a, "key", b),
		} {
			e.Match(get)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	e, err := Compile("a between 0 and 3 and b = 'x'")
	if err != nil {
		b.Fatal(err)
	}
	m := map[string]string{"a": "2", "b": "x", "TAGS": "t", "KEYS": "k"}
	get := func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
	b.ReportAllocs()
	for b.Loop() {
		if !e.Match(get) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile("a between 0 and 3 and b = 'x'"); err != nil {
			b.Fatal(err)
		}
	}
}
