package client

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// holdProxy sits between clients and a broker (the broker advertises the
// proxy's address) and forwards every request at once, except those its
// hold function picks: each of them waits for release, while the
// requests after it on the same connection go on. It stretches the
// window in which a request sent earlier reaches the broker later.
type holdProxy struct {
	addr   string
	target string
	hold   func(req *remoting.Command) bool
	// answered, if set (before the first client connects), sees each
	// response the broker sends back.
	answered atomic.Pointer[func(resp *remoting.Command)]

	mu      sync.Mutex
	release map[*remoting.Command]chan struct{} // held, not yet released
}

// startHoldProxy listens on a free port; it forwards to target, which is
// dialled when a client connects.
func startHoldProxy(t *testing.T, target string, hold func(req *remoting.Command) bool) *holdProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &holdProxy{addr: ln.Addr().String(), target: target, hold: hold, release: map[*remoting.Command]chan struct{}{}}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		px.releaseAll()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", px.target)
			if err != nil {
				in.Close()
				continue
			}
			conns.Store(in, nil)
			conns.Store(out, nil)
			wg.Go(func() { px.back(out, in); in.Close() })
			wg.Go(func() { px.forward(in, out, &wg); out.Close() })
		}
	})
	return px
}

// back copies the broker's responses from out to in, showing each to
// px.answered if set.
func (px *holdProxy) back(out, in net.Conn) {
	f := px.answered.Load()
	if f == nil {
		_, _ = io.Copy(in, out)
		return
	}
	for {
		cmd, err := remoting.Decode(out, remoting.DefaultMaxFrameSize)
		if err != nil {
			return
		}
		frame, err := remoting.Encode(cmd)
		if err != nil {
			return
		}
		if _, err := in.Write(frame); err != nil {
			return
		}
		(*f)(cmd)
	}
}

// forward decodes in's requests and writes them to out, holding those
// px.hold picks until they are released.
func (px *holdProxy) forward(in, out net.Conn, wg *sync.WaitGroup) {
	var wmu sync.Mutex
	write := func(cmd *remoting.Command) {
		frame, err := remoting.Encode(cmd)
		if err != nil {
			return
		}
		wmu.Lock()
		defer wmu.Unlock()
		_, _ = out.Write(frame)
	}
	for {
		cmd, err := remoting.Decode(in, remoting.DefaultMaxFrameSize)
		if err != nil {
			return
		}
		if cmd.IsResponse() || !px.hold(cmd) {
			write(cmd)
			continue
		}
		ch := make(chan struct{})
		px.mu.Lock()
		px.release[cmd] = ch
		px.mu.Unlock()
		wg.Go(func() { <-ch; write(cmd) })
	}
}

// releaseAll forwards the requests held so far.
func (px *holdProxy) releaseAll() {
	px.mu.Lock()
	defer px.mu.Unlock()
	for cmd, ch := range px.release {
		close(ch)
		delete(px.release, cmd)
	}
}

// releaseWhere forwards the requests held so far that match.
func (px *holdProxy) releaseWhere(match func(req *remoting.Command) bool) {
	px.mu.Lock()
	defer px.mu.Unlock()
	for cmd, ch := range px.release {
		if match(cmd) {
			close(ch)
			delete(px.release, cmd)
		}
	}
}
