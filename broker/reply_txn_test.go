package broker

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/message"
)

// A reply is never a transaction's commit, whatever sysFlag its sender
// put in the header. The transaction service's replay after a crash reads
// every record with the commit type in its sysFlag as the commit of the
// half message at its preparedTransactionOffset (0 for a reply): a reply
// stored with that type would mark the transaction whose half message is
// the log's first record committed, and its message would never be
// delivered (the producer's commit is answered "already committed").
func TestReplyWithACommitSysFlagCommitsNoTransaction(t *testing.T) {
	o := txnOptions(t)
	o.Txn.CheckpointInterval = time.Hour // the crash below replays everything
	b := startBroker(t, o)
	c := dial(t, b)
	half := sendHalfRaw(t, c, "orders", "x1")
	if half["commitLogOffset"] != "0" {
		t.Fatalf("the half message is at %s, want the log's first record", half["commitLogOffset"])
	}
	ext := replyHeader(ReplyTopic(DefaultClusterName), props("MSG_TYPE", "reply", "CORRELATION_ID", "c1",
		"REPLY_TO_CLIENT", "nobody", "UNIQ_KEY", "r1"))
	ext["sysFlag"] = strconv.Itoa(int(message.TransactionCommitType))
	call(t, c, remoting.ReqSendReplyMessage, ext, []byte("pong")) // stored, though nobody takes the push

	// kill -9: what the broker wrote to its files, nothing it held in memory.
	crashed := t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(o.Store.Dir)); err != nil {
		t.Fatal(err)
	}
	o2 := txnOptions(t)
	o2.Store.Dir = crashed
	b2 := startBroker(t, o2)
	c2 := dial(t, b2)
	if r := endTxn(t, c2, half, message.TransactionCommitType); r.Code != remoting.RespSuccess || r.Remark != "" {
		t.Fatalf("the producer's commit after the crash: %d %q; want it written", r.Code, r.Remark)
	}
	waitQueue(t, b2, "orders", 0, 1)
}
