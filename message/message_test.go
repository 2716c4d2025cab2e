package message

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func sample() *Message {
	return &Message{
		Topic:         "orders",
		QueueID:       3,
		Flag:          7,
		SysFlag:       FlagMultiTags,
		BornTimestamp: 1700000000123,
		BornHost:      netip.MustParseAddrPort("10.1.2.3:5555"),
		StoreHost:     netip.MustParseAddrPort("127.0.0.1:10911"),
		Body:          []byte("hello body"),
		Properties:    Properties{PropertyTags: "TagA", PropertyKeys: "order-42 user-7", "traceparent": "00-abc-def-01"}.Encode(),
	}
}

func sealed(t testing.TB, m *Message) []byte {
	t.Helper()
	mm := *m
	mm.Properties = WithCRCSlot(m.Properties)
	rec, err := AppendRecord(nil, &mm)
	if err != nil {
		t.Fatal(err)
	}
	SetOffsets(rec, 11, 4096, 1700000000999)
	Seal(rec)
	return rec
}

func TestRecordRoundTrip(t *testing.T) {
	for _, host := range []string{"10.1.2.3:5555", "[2001:db8::1]:5555"} {
		m := sample()
		m.BornHost = netip.MustParseAddrPort(host)
		rec := sealed(t, m)
		e, n, err := Decode(rec)
		if err != nil || n != len(rec) {
			t.Fatalf("%s: Decode = %v, n %d of %d", host, err, n, len(rec))
		}
		if e.Topic != m.Topic || e.QueueID != 3 || e.Flag != 7 || !bytes.Equal(e.Body, m.Body) ||
			e.Properties != m.Properties || e.BornHost != m.BornHost || e.StoreHost != m.StoreHost ||
			e.QueueOffset != 11 || e.CommitLogOffset != 4096 || e.StoreTimestamp != 1700000000999 ||
			e.BornTimestamp != m.BornTimestamp || e.StoreSize != int32(len(rec)) {
			t.Fatalf("%s: decoded %+v", host, e)
		}
		if e.SysFlag&FlagMultiTags == 0 || (e.SysFlag&FlagBornHostV6 != 0) != strings.HasPrefix(host, "[") {
			t.Fatalf("%s: sysFlag %b", host, e.SysFlag)
		}
		if e.Property(PropertyTags) != "TagA" || strings.Join(Keys(e.Properties), ",") != "order-42,user-7" {
			t.Fatalf("%s: properties %q", host, e.Properties)
		}
	}
}

// Every single-byte corruption of a sealed record is detected.
func TestSealDetectsEveryByteFlip(t *testing.T) {
	rec := sealed(t, sample())
	for i := range rec {
		bad := append([]byte(nil), rec...)
		bad[i] ^= 0x5A
		if _, _, err := DecodeSealed(bad); err == nil {
			t.Errorf("flipping byte %d of %d went undetected", i, len(rec))
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	rec := sealed(t, sample())
	blank := AppendBlank(nil, 100)
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short header", rec[:5], ErrTruncated},
		{"truncated", rec[:len(rec)-3], ErrTruncated},
		{"bad magic", append([]byte{0, 0, 0, 100, 1, 2, 3, 4}, make([]byte, 92)...), ErrBadMagic},
		{"blank", blank, ErrBlank},
	}
	for _, c := range cases {
		if _, _, err := Decode(c.in); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, n, _ := Decode(blank); n != 100 {
		t.Errorf("blank size = %d, want 100", n)
	}
}

func TestEncodeLimits(t *testing.T) {
	if _, err := AppendRecord(nil, &Message{Topic: strings.Repeat("t", 128)}); !errors.Is(err, ErrTopicTooLong) {
		t.Errorf("long topic: %v", err)
	}
	if _, err := AppendRecord(nil, &Message{Topic: "t", Properties: strings.Repeat("p", 32768)}); !errors.Is(err, ErrPropertiesTooLong) {
		t.Errorf("long properties: %v", err)
	}
}

func TestProperties(t *testing.T) {
	p := Properties{"b": "2", "a": "1", "KEYS": "k1  k2"}
	enc := p.Encode()
	if enc != "KEYS\x01k1  k2\x02a\x011\x02b\x012\x02" {
		t.Fatalf("Encode = %q", enc)
	}
	back := ParseProperties(enc + "junk-without-separator\x02")
	if len(back) != 3 || back["a"] != "1" {
		t.Fatalf("ParseProperties = %v", back)
	}
	if v, ok := Property(enc, "b"); !ok || v != "2" {
		t.Fatalf("Property b = %q %v", v, ok)
	}
	if _, ok := Property(enc, "KEY"); ok {
		t.Fatal("Property matched a prefix of a name")
	}
	if k := Keys(enc); len(k) != 2 || k[1] != "k2" {
		t.Fatalf("Keys = %v", k)
	}
	if StripCRCSlot(WithCRCSlot(enc)) != enc || WithCRCSlot(WithCRCSlot(enc)) != WithCRCSlot(enc) {
		t.Fatal("CRC slot is not added exactly once")
	}
}

func TestMessageIDAndTags(t *testing.T) {
	host := netip.MustParseAddrPort("127.0.0.1:10911")
	id := OffsetMsgID(host, 0x1234)
	if id != "7F00000100002A9F0000000000001234" {
		t.Fatalf("OffsetMsgID = %s", id)
	}
	h, off, err := ParseOffsetMsgID(id)
	if err != nil || h != host || off != 0x1234 {
		t.Fatalf("ParseOffsetMsgID = %v %d %v", h, off, err)
	}
	for _, bad := range []string{"", "XYZ", strings.Repeat("G", 32), "7F00000100002A9F00000000000012"} {
		if _, _, err := ParseOffsetMsgID(bad); !errors.Is(err, ErrBadMessageID) {
			t.Errorf("ParseOffsetMsgID(%q) = %v", bad, err)
		}
	}
	// Java's String.hashCode values.
	for s, want := range map[string]int64{"": 0, "hello": 99162322, "TagA": 2598919, "订单": 1129459} {
		if got := TagsCode(s); got != want {
			t.Errorf("TagsCode(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestValidateTopic(t *testing.T) {
	for _, ok := range []string{"orders", "%RETRY%group-1", "a|b", strings.Repeat("x", 127)} {
		if err := ValidateTopic(ok); err != nil {
			t.Errorf("ValidateTopic(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "../x", "t/t", "é", strings.Repeat("x", 128)} {
		if err := ValidateTopic(bad); !errors.Is(err, ErrBadTopic) {
			t.Errorf("ValidateTopic(%q) = %v, want ErrBadTopic", bad, err)
		}
	}
}

func TestValidateGroup(t *testing.T) {
	for _, ok := range []string{"cg", "GID_orders-1", "a|b%c", strings.Repeat("g", 255)} {
		if err := ValidateGroup(ok); err != nil {
			t.Errorf("ValidateGroup(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "g/h", "é", strings.Repeat("g", 256)} {
		if err := ValidateGroup(bad); !errors.Is(err, ErrBadGroup) {
			t.Errorf("ValidateGroup(%q) = %v, want ErrBadGroup", bad, err)
		}
	}
}

// FuzzDecode: garbage never panics, and whatever decodes is self-consistent.
func FuzzDecode(f *testing.F) {
	f.Add(sealed(f, sample()))
	f.Add(AppendBlank(nil, 8))
	f.Add([]byte{0xDA, 0xA3, 0x20, 0xA7})
	rec := sealed(f, sample())
	f.Add(rec[:len(rec)/2])
	f.Add(append(rec, rec...))
	f.Fuzz(func(t *testing.T, b []byte) {
		DecodeSealed(b)
		e, n, err := Decode(b)
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) || int(e.StoreSize) != n {
			t.Fatalf("decoded size %d of %d bytes, StoreSize %d", n, len(b), e.StoreSize)
		}
		if BodyCRC(e.Body) != e.BodyCRC {
			t.Fatal("accepted a body whose CRC does not match")
		}
		DecodeAll(b)
	})
}

func TestEditProperties(t *testing.T) {
	s := "A\x011\x02DELAY\x013\x02B\x012\x02"
	if got := RemoveProperties(s, "DELAY", "nope"); got != "A\x011\x02B\x012\x02" {
		t.Fatalf("RemoveProperties = %q", got)
	}
	if got := SetProperty(s, "A", "9"); got != "DELAY\x013\x02B\x012\x02A\x019\x02" {
		t.Fatalf("SetProperty = %q", got)
	}
	if got := SetProperty("", "K", "v"); got != "K\x01v\x02" {
		t.Fatalf("SetProperty on empty = %q", got)
	}
}

func TestSealableRecordMatchesSlottedProperties(t *testing.T) {
	m := sample()
	viaSlot := *m
	viaSlot.Properties = WithCRCSlot(m.Properties)
	a, err := AppendRecord(nil, &viaSlot)
	if err != nil {
		t.Fatal(err)
	}
	for _, props := range []string{m.Properties, WithCRCSlot(m.Properties)} {
		mm := *m
		mm.Properties = props
		b, err := AppendSealableRecord(nil, &mm)
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("AppendSealableRecord(%q) differs from AppendRecord with a slot: %v", props, err)
		}
		if n, _ := SealableRecordSize(&mm); n != len(b) {
			t.Fatalf("SealableRecordSize = %d, record is %d", n, len(b))
		}
	}
	if _, err := SealableRecordSize(&Message{Topic: "t", Properties: strings.Repeat("p", MaxPropertiesLength-CRCSlotSize+1)}); !errors.Is(err, ErrPropertiesTooLong) {
		t.Fatalf("properties that leave no room for the slot: %v", err)
	}
}

// TailOffset and DecodeTail find the topic and properties Decode finds,
// from the header and the tail alone, for either host width.
func TestDecodeTailMatchesDecode(t *testing.T) {
	for _, host := range []string{"10.1.2.3:5555", "[2001:db8::1]:5555"} {
		m := sample()
		m.BornHost = netip.MustParseAddrPort(host)
		m.StoreHost = netip.MustParseAddrPort(host)
		m.Body = bytes.Repeat([]byte("b"), 300)
		rec := sealed(t, m)
		e, _, err := Decode(rec)
		if err != nil {
			t.Fatal(err)
		}
		start, err := TailOffset(rec[:PropertiesHeaderSize], len(rec))
		if err != nil {
			t.Fatalf("%s: TailOffset: %v", host, err)
		}
		topic, props, err := DecodeTail(rec[start:])
		if err != nil || topic != e.Topic || props != e.Properties {
			t.Fatalf("%s: DecodeTail = %q %q %v, want %q %q", host, topic, props, err, e.Topic, e.Properties)
		}
		if _, err := TailOffset(rec[:PropertiesHeaderSize], len(rec)-1); err == nil {
			t.Fatalf("%s: TailOffset accepted a wrong size", host)
		}
		if _, _, err := DecodeTail(rec[start : len(rec)-1]); err == nil {
			t.Fatalf("%s: DecodeTail accepted a short tail", host)
		}
	}
}
