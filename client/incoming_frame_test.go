package client

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// A name server address that is really an HTTP port (a dashboard, a
// proxy): the reply's first four bytes, "HTTP", read as a length prefix,
// are over 16 MiB, so the connection closes with a DecodeError wrapping
// remoting.ErrFrameTooLarge, and every call pending on it fails wrapping
// that. invokeFor maps any such error to ErrMessageTooLarge ("refused
// before anything was written"): a one-byte send is reported as a message
// too large, a permanent error.
func TestIncomingOversizeFrameIsNotMessageTooLarge(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				buf := make([]byte, 4096)
				if _, err := nc.Read(buf); err != nil {
					return
				}
				_, _ = io.WriteString(nc, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
				_, _ = nc.Read(buf)
			}()
		}
	}()
	c := newClient(t, ln.Addr().String(), nil)
	p := newProducer(t, c, ProducerOptions{})
	_, err = p.Send(ctxT(t, 10*time.Second), &Message{Topic: "t", Body: []byte("x")})
	if err == nil || errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("Send of a 1-byte message to a name server that is an HTTP port = %v", err)
	}
}
