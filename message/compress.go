package message

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
)

// MaxInflatedSize bounds a compressed body's inflated size (a body that
// inflates past it is refused rather than held in memory).
const MaxInflatedSize = 64 << 20

// Inflate returns the body a consumer sees: a body whose sysFlag has
// FlagCompressed (the Java and Go producers zlib-compress bodies over
// 4 KiB by default) inflated, and the sysFlag without the bit. Any other
// body comes back as it is. A compressed body that does not inflate comes
// back as it is, flag set, with an error wrapping ErrBadCompression.
func Inflate(body []byte, sysFlag int32) ([]byte, int32, error) {
	if sysFlag&FlagCompressed == 0 {
		return body, sysFlag, nil
	}
	r, err := zlib.NewReader(bytes.NewReader(body))
	if err != nil {
		return body, sysFlag, fmt.Errorf("%w: %v", ErrBadCompression, err)
	}
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, MaxInflatedSize+1))
	switch {
	case err != nil:
		return body, sysFlag, fmt.Errorf("%w: %v", ErrBadCompression, err)
	case len(out) > MaxInflatedSize:
		return body, sysFlag, fmt.Errorf("%w: it inflates past %d bytes", ErrBadCompression, MaxInflatedSize)
	}
	return out, sysFlag &^ FlagCompressed, nil
}
