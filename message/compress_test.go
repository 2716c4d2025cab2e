package message

import (
	"bytes"
	"compress/zlib"
	"errors"
	"testing"
)

func zipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := zlib.NewWriter(&out)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestInflate(t *testing.T) {
	body := bytes.Repeat([]byte("abc"), 5000)
	flag := FlagCompressed | TransactionCommitType
	got, sf, err := Inflate(zipped(t, body), flag)
	if err != nil || !bytes.Equal(got, body) || sf != TransactionCommitType {
		t.Fatalf("Inflate = %d bytes, sysFlag %d, %v; want the body and the flag cleared", len(got), sf, err)
	}
	if got, sf, err := Inflate([]byte("plain"), TransactionCommitType); err != nil || string(got) != "plain" || sf != TransactionCommitType {
		t.Fatalf("uncompressed body: %q, %d, %v", got, sf, err)
	}
	for name, in := range map[string][]byte{
		"not zlib":  []byte("not zlib"),
		"truncated": zipped(t, body)[:40],
		"too large": zipped(t, make([]byte, MaxInflatedSize+1)),
	} {
		got, sf, err := Inflate(in, FlagCompressed)
		if !errors.Is(err, ErrBadCompression) || !bytes.Equal(got, in) || sf != FlagCompressed {
			t.Errorf("%s: %d bytes, sysFlag %d, %v; want it back as it was with ErrBadCompression", name, len(got), sf, err)
		}
	}
}
