package message

import (
	"strings"
	"testing"
)

// FuzzProperties feeds wire-form properties (a send's properties field,
// a batch element's) to the property functions the broker applies to
// them: SetProperty then makes name read back as value whatever s held,
// both by Property and by ParseProperties, and RemoveProperties removes
// it, leaving the other pairs.
func FuzzProperties(f *testing.F) {
	f.Add("TAGS\x01a\x02KEYS\x01k1 k2\x02", "DELAY", "3")
	f.Add("DELAY\x011\x02DELAY\x012\x02", "DELAY", "0")
	f.Add("DELAY\x02\x01x\x02DELAYED\x01y", "DELAY", "")
	f.Add("\x01\x01\x02\x02", "a", "b")
	f.Fuzz(func(t *testing.T, s, name, value string) {
		if name == "" || strings.ContainsAny(name+value, "\x01\x02") {
			return // not a pair SetProperty can write
		}
		// Property reads what ParseProperties (and a client's map) does,
		// duplicates included: the last value wins.
		v, ok := Property(s, name)
		if pv, pok := ParseProperties(s)[name]; v != pv || ok != pok {
			t.Fatalf("Property(%q, %q) = %q, %v; ParseProperties has %q, %v", s, name, v, ok, pv, pok)
		}
		set := SetProperty(s, name, value)
		if v, ok := Property(set, name); !ok || v != value {
			t.Fatalf("Property(SetProperty(%q, %q, %q)) = %q, %v", s, name, value, v, ok)
		}
		if v := ParseProperties(set)[name]; v != value {
			t.Fatalf("ParseProperties(SetProperty(%q, %q, %q))[name] = %q", s, name, value, v)
		}
		removed := RemoveProperties(set, name)
		if v, ok := Property(removed, name); ok {
			t.Fatalf("RemoveProperties(%q, %q) still has %q", set, name, v)
		}
		want := ParseProperties(s)
		delete(want, name)
		got := ParseProperties(removed)
		if len(got) != len(want) {
			t.Fatalf("RemoveProperties(%q, %q) = %q: pairs %v, want %v", set, name, removed, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("RemoveProperties(%q, %q) = %q: %q is %q, want %q", set, name, removed, k, got[k], v)
			}
		}
	})
}

// FuzzParseOffsetMsgID feeds message ids (VIEW_MESSAGE_BY_ID, the trace
// query) to ParseOffsetMsgID: what it accepts formats back to an id that
// parses to the same host and offset.
func FuzzParseOffsetMsgID(f *testing.F) {
	f.Add("7F000001000083910000000000000253")
	f.Add("00000000000000000000FFFF7F000001000083910000000000000253")
	f.Add("7F0000010001FFFF7FFFFFFFFFFFFFFF")
	f.Add("zz000001000083910000000000000253")
	f.Fuzz(func(t *testing.T, id string) {
		host, off, err := ParseOffsetMsgID(id)
		if err != nil {
			return
		}
		again := OffsetMsgID(host, off)
		h2, o2, err := ParseOffsetMsgID(again)
		if err != nil || h2.Addr().Unmap() != host.Addr().Unmap() || h2.Port() != host.Port() || o2 != off || off < 0 {
			t.Fatalf("%q parses to %v %d, formats as %q, which parses to %v %d (%v)", id, host, off, again, h2, o2, err)
		}
	})
}
