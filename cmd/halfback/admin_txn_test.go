package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/admin"
	"github.com/halfbackmq/halfback/message"
)

// sendHalf stores a half message of producer group pg, as a
// transactional producer's send does.
func sendHalf(t *testing.T, addr, topic, id string) {
	t.Helper()
	c, err := remoting.Dial(context.Background(), addr, remoting.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := remoting.NewRequest(remoting.ReqSendMessage, map[string]string{"producerGroup": "pg", "topic": topic,
		"queueId": "0", "sysFlag": strconv.Itoa(int(message.TransactionPreparedType)), "bornTimestamp": "1", "flag": "0",
		"properties": message.Properties{message.PropertyUniqKey: id, message.PropertyKeys: "order-" + id,
			message.PropertyTransactionPrepared: "true", message.PropertyProducerGroup: "pg"}.Encode()})
	req.Body = []byte("body-" + id)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Invoke(ctx, req)
	if err != nil || resp.Code != remoting.RespSuccess {
		t.Fatalf("half send: %v %+v", err, resp)
	}
}

func TestTxnCommands(t *testing.T) {
	addr := startTestBroker(t)
	sendHalf(t, addr, "orders", "tx-commit")
	sendHalf(t, addr, "orders", "tx-rollback")

	var open []admin.Transaction
	runAdmin(t, addr, &open, "txn", "list")
	if len(open) != 2 || open[0].TransactionID != "tx-commit" || open[0].Status != "pending" || open[0].Group != "pg" ||
		open[0].Topic != "orders" || open[0].Keys != "order-tx-commit" {
		t.Fatalf("txn list: %+v", open)
	}
	var parked []admin.Transaction
	runAdmin(t, addr, &parked, "txn", "list", "--status", "parked")
	if len(parked) != 0 {
		t.Fatalf("parked: %+v", parked)
	}
	var pending []admin.Transaction // the status is read in any case
	runAdmin(t, addr, &pending, "txn", "list", "--status", "PENDING")
	if len(pending) != 2 {
		t.Fatalf("--status PENDING: %+v", pending)
	}
	var tx admin.Transaction
	runAdmin(t, addr, &tx, "txn", "commit", open[0].MsgID)
	if tx.Status != "committed" {
		t.Fatalf("txn commit: %+v", tx)
	}
	runAdmin(t, addr, &tx, "txn", "rollback", "tx-rollback")
	if tx.Status != "rolled-back" {
		t.Fatalf("txn rollback: %+v", tx)
	}
	msgs := consumeN(t, addr, "g", "orders", 1)
	if len(msgs) != 1 || string(msgs[0].Body) != "body-tx-commit" {
		t.Fatalf("consumed %+v", msgs)
	}
	runAdmin(t, addr, &open, "txn", "list")
	if len(open) != 0 {
		t.Fatalf("still open: %+v", open)
	}
	for args, want := range map[string]string{
		"txn resume nope":     "no such transaction",
		"txn commit nope":     "no transaction",
		"txn list --status x": "not pending or parked",
	} {
		if err := runAdminErr(t, addr, strings.Fields(args)...); !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", args, err, want)
		}
	}
}

// "txn list --max N" and "trace --max N" say "at most this many": a
// negative or zero N is refused, as consume and dlq list refuse it (the
// broker took it for its default, 1000 / 100, and the command exited 0).
func TestMaxBelowOneIsRefused(t *testing.T) {
	clearEnv(t)
	addr := startTestBroker(t)
	sendHalf(t, addr, "orders", "tx-1")
	sendHalf(t, addr, "orders", "tx-2")
	var one []admin.Transaction
	runAdmin(t, addr, &one, "txn", "list", "--max", "1")
	if len(one) != 1 {
		t.Fatalf("txn list --max 1: %d transactions", len(one))
	}
	for _, args := range [][]string{
		{"txn", "list", "--max", "-1"},
		{"txn", "list", "--max", "0"},
		{"trace", "tx-1", "--max", "-1"},
	} {
		out, err := run(t, append(args, "--broker", addr, "--json")...)
		if err == nil || !strings.Contains(err.Error(), "--max") {
			t.Errorf("halfback %s: err %v (output %d bytes: %.120q), want --max refused",
				strings.Join(args, " "), err, len(out), out)
		}
	}
}
