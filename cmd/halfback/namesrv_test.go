package main

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/config"
)

func TestNamesrvRunsUntilCancelled(t *testing.T) {
	clearEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	out, done := start(ctx, "namesrv", "--config", "", "--listen", "127.0.0.1:0")
	addrRE := regexp.MustCompile(`msg="halfback namesrv ready" addr=(\S+)`)
	var addr string
	waitFor(t, 10*time.Second, "the ready line", func() bool {
		select {
		case err := <-done:
			t.Fatalf("namesrv returned before it was ready: %v\n%s", err, out)
		default:
		}
		m := addrRE.FindStringSubmatch(out.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})

	c, err := remoting.Dial(ctx, addr, remoting.DialOptions{})
	if err != nil {
		t.Fatalf("dial the name server at %s: %v", addr, err)
	}
	defer c.Close()
	resp, err := c.Invoke(ctx, remoting.NewRequest(remoting.ReqGetBrokerClusterInfo, nil))
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("GET_BROKER_CLUSTER_INFO: %v, %v", resp, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("namesrv returned %v after cancel, want nil\n%s", err, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("namesrv did not stop after cancel")
	}
	if !strings.Contains(out.String(), `msg="halfback namesrv stopped"`) {
		t.Errorf("no stop line:\n%s", out)
	}
}

func TestNamesrvRejectsBadListen(t *testing.T) {
	clearEnv(t)
	_, err := run(t, "namesrv", "--config", "", "--listen", "nowhere")
	if err == nil || !strings.Contains(err.Error(), `--listen "nowhere"`) || !strings.Contains(err.Error(), "namesrv.listenAddr") || !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("err = %v, want an ErrInvalid naming --listen and the key it overrides", err)
	}
	// The same value from the config is the key's fault, not the flag's.
	t.Setenv("HALFBACK_NAMESRV_LISTENADDR", "nowhere")
	_, err = run(t, "namesrv", "--config", "")
	if err == nil || strings.Contains(err.Error(), "--listen") || !strings.Contains(err.Error(), "namesrv.listenAddr") {
		t.Fatalf("err = %v, want one naming namesrv.listenAddr only", err)
	}
}
