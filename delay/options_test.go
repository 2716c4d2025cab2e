package delay

import (
	"slices"
	"testing"
	"time"
)

// FormatLevels writes levels as ParseLevels reads them back, in
// RocketMQ's units where they fit.
func TestFormatLevelsRoundTrips(t *testing.T) {
	for _, s := range []string{DefaultLevels, "1d 2d 36h 90m 1.5s 100ms", "250ms"} {
		levels, err := ParseLevels(s)
		if err != nil {
			t.Fatal(err)
		}
		f := FormatLevels(levels)
		back, err := ParseLevels(f)
		if err != nil || !slices.Equal(back, levels) {
			t.Fatalf("FormatLevels(%q) = %q, which parses to %v, %v", s, f, back, err)
		}
	}
	if got := FormatLevels(mustLevels(t, DefaultLevels)); got != DefaultLevels {
		t.Fatalf("FormatLevels of RocketMQ's levels = %q, want %q", got, DefaultLevels)
	}
	if got := FormatLevels(mustLevels(t, "24h 36h 60m")); got != "1d 36h 1h" {
		t.Fatalf("FormatLevels = %q, want 1d 36h 1h", got)
	}
}

func mustLevels(t *testing.T, s string) []time.Duration {
	t.Helper()
	l, err := ParseLevels(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
