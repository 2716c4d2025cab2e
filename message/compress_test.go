package message

import (
	"bytes"
	"compress/zlib"
	"errors"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
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

// FuzzInflate feeds Inflate hostile bodies of every compression type: it
// must return an error wrapping ErrBadCompression (the body as it was) or
// a body of at most MaxInflatedSize, never panic.
func FuzzInflate(f *testing.F) {
	body := bytes.Repeat([]byte("halfback "), 1000)
	var lz bytes.Buffer
	lw := lz4.NewWriter(&lz)
	lw.Write(body)
	lw.Close()
	zw, _ := zstd.NewWriter(nil)
	zs := zw.EncodeAll(body, nil)
	zw.Close()
	var zl bytes.Buffer
	w := zlib.NewWriter(&zl)
	w.Write(body)
	w.Close()
	for _, s := range []struct {
		b    []byte
		flag int32
	}{
		{zl.Bytes(), FlagCompressed}, {zl.Bytes(), FlagCompressed | compressionTypeZlib},
		{lz.Bytes(), FlagCompressed | compressionTypeLZ4}, {zs, FlagCompressed | compressionTypeZstd},
		// A zstd frame header declaring a 64 MiB window, one raw byte.
		{[]byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, 16 << 3, 0x09, 0x00, 0x00, 'x'}, FlagCompressed | compressionTypeZstd},
		// The same declaring 128 MiB: refused.
		{[]byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, 17 << 3, 0x09, 0x00, 0x00, 'x'}, FlagCompressed | compressionTypeZstd},
		{lz.Bytes()[:12], FlagCompressed | compressionTypeLZ4},
	} {
		f.Add(s.b, s.flag)
	}
	f.Fuzz(func(t *testing.T, in []byte, flag int32) {
		flag |= FlagCompressed
		out, sf, err := Inflate(in, flag)
		switch {
		case err != nil && (!errors.Is(err, ErrBadCompression) || !bytes.Equal(out, in) || sf != flag):
			t.Fatalf("failed Inflate: %v, sysFlag %d, body changed %v", err, sf, !bytes.Equal(out, in))
		case err == nil && (len(out) > MaxInflatedSize || sf != flag&^FlagCompressed):
			t.Fatalf("Inflate: %d bytes, sysFlag %d", len(out), sf)
		}
	})
}
