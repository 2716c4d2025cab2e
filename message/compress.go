package message

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// MaxInflatedSize bounds a compressed body's inflated size (a body that
// inflates past it is refused rather than held in memory).
const MaxInflatedSize = 64 << 20

// The compression type of a compressed body, in sysFlag bits 8 to 10
// (RocketMQ's MessageSysFlag.COMPRESSION_*_TYPE, which the Java client
// sets after its rocketmq.message.compressType, ZLIB by default); 0, from
// older clients and the Go client, is zlib too.
const (
	compressionTypeMask  = int32(7 << 8)
	compressionTypeZlib0 = int32(0)
	compressionTypeLZ4   = int32(1 << 8)
	compressionTypeZstd  = int32(2 << 8)
	compressionTypeZlib  = int32(3 << 8)
)

// CompressionFlags is the part of sysFlag that says a body is compressed
// and how: FlagCompressed and the compression type, or 0 for a body not
// flagged compressed. A copy of a body kept as it is (one that did not
// inflate) carries them, so that it is read as the original was.
func CompressionFlags(sysFlag int32) int32 {
	if sysFlag&FlagCompressed == 0 {
		return 0
	}
	return sysFlag & (FlagCompressed | compressionTypeMask)
}

// Inflate returns the body a consumer sees: a body whose sysFlag has
// FlagCompressed (the Java and Go producers compress bodies over 4 KiB by
// default: zlib, or LZ4 or zstd when the Java client's compression type
// says so) inflated, and the sysFlag without the bit. Any other body
// comes back as it is. A compressed body that does not inflate comes back
// as it is, flag set, with an error wrapping ErrBadCompression.
func Inflate(body []byte, sysFlag int32) ([]byte, int32, error) {
	if sysFlag&FlagCompressed == 0 {
		return body, sysFlag, nil
	}
	var r io.Reader
	switch sysFlag & compressionTypeMask {
	case compressionTypeZlib0, compressionTypeZlib:
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return body, sysFlag, fmt.Errorf("%w: %v", ErrBadCompression, err)
		}
		defer zr.Close()
		r = zr
	case compressionTypeLZ4:
		r = lz4.NewReader(bytes.NewReader(body))
	case compressionTypeZstd:
		zr, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(MaxInflatedSize+1))
		if err != nil {
			return body, sysFlag, fmt.Errorf("%w: %v", ErrBadCompression, err)
		}
		defer zr.Close()
		r = zr
	default:
		return body, sysFlag, fmt.Errorf("%w: unknown compression type %d", ErrBadCompression, (sysFlag&compressionTypeMask)>>8)
	}
	out, err := io.ReadAll(io.LimitReader(r, MaxInflatedSize+1))
	switch {
	case err != nil:
		return body, sysFlag, fmt.Errorf("%w: %v", ErrBadCompression, err)
	case len(out) > MaxInflatedSize:
		return body, sysFlag, fmt.Errorf("%w: it inflates past %d bytes", ErrBadCompression, MaxInflatedSize)
	}
	return out, sysFlag &^ FlagCompressed, nil
}
