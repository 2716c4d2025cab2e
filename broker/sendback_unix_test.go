//go:build unix

package broker

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// TestSendBackWhileStartingClosesTheConnection: while the broker is
// starting (listening, store not open yet) it answers requests
// SYSTEM_BUSY. The official Go client v2.1.2 takes any answer to
// CONSUMER_SEND_MSG_BACK as "stored" and acknowledges the failed message,
// so a send-back gets a closed connection (as handleSendBack does on a
// store failure), never an answer it did not act on.
func TestSendBackWhileStartingClosesTheConnection(t *testing.T) {
	o := testOptions(t)
	b, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	offs := appendTestMsgs(t, b, "orders", 0, 1)
	addr := b.Addr()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Hold the next Open in store recovery: its checkpoint read blocks on
	// a FIFO until the test writes the saved checkpoint into it.
	cp := filepath.Join(o.Store.Dir, "checkpoint")
	saved, err := os.ReadFile(cp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(cp); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(cp, 0o600); err != nil {
		t.Fatal(err)
	}
	o.ListenAddr = addr
	opened := make(chan *Broker, 1)
	go func() {
		b2, err := Open(o)
		if err != nil {
			t.Errorf("reopen: %v", err)
		}
		opened <- b2
	}()
	release := func() {
		w, err := os.OpenFile(cp, os.O_WRONLY, 0)
		if err != nil {
			t.Errorf("open fifo: %v", err)
			return
		}
		_, _ = w.Write(saved)
		w.Close()
	}
	defer func() {
		if b2 := <-opened; b2 != nil {
			b2.Close()
		}
	}()
	defer release()

	var conn *remoting.Conn
	waitFor(t, "the restarting broker to listen", func() bool {
		c, err := remoting.Dial(context.Background(), addr, remoting.DialOptions{})
		if err != nil {
			return false
		}
		conn = c
		return true
	})
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	busy, err := conn.Invoke(ctx, remoting.NewRequest(remoting.ReqGetMaxOffset, map[string]string{"topic": "orders", "queueId": "0"}))
	if err != nil || busy.Code != remoting.RespSystemBusy {
		t.Fatalf("another request while starting: %v, %+v; want SYSTEM_BUSY", err, busy)
	}
	req := remoting.NewRequest(remoting.ReqConsumerSendMsgBack, sendBackExt(offs[0], "g1", "orders", 0, 16))
	resp, err := conn.Invoke(ctx, req)
	if err == nil {
		t.Fatalf("send-back during startup answered code %d %q: the Go client v2.1.2 takes any answer as stored and drops the message", resp.Code, resp.Remark)
	}
}
