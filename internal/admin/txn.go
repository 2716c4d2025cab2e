package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// Transaction is a half message the broker keeps, as halfback's
// transaction admin requests describe it.
type Transaction struct {
	// HalfOffset is the half record's commit-log offset.
	HalfOffset int64 `json:"halfOffset"`
	// QueueOffset is its offset in RMQ_SYS_TRANS_HALF_TOPIC.
	QueueOffset int64 `json:"queueOffset"`
	// MsgID is the half record's offset message id.
	MsgID string `json:"msgId"`
	// TransactionID is the message's UNIQ_KEY.
	TransactionID string `json:"transactionId"`
	// Group is the producer group.
	Group string `json:"producerGroup"`
	// Topic is where the message goes on commit.
	Topic string `json:"topic"`
	// Keys are the message's KEYS.
	Keys string `json:"keys,omitempty"`
	// Status is pending, parked, committed or rolled-back.
	Status string `json:"status"`
	// Checks is how many check-backs reached a producer.
	Checks int `json:"checks"`
	// Stored is when the half message was stored.
	Stored time.Time `json:"stored"`
	// NextCheck is when a pending one is checked next.
	NextCheck time.Time `json:"nextCheck,omitzero"`
}

// Transactions lists the broker's open transactions, oldest first:
// status "pending", "parked" or "" for both, in any case; at most limit
// (<= 0: the broker's default of 1000).
func (c *Client) Transactions(ctx context.Context, status string, limit int) ([]Transaction, error) {
	ext := map[string]string{"status": strings.ToLower(strings.TrimSpace(status))}
	if limit > 0 {
		ext["limit"] = strconv.Itoa(limit)
	}
	resp, err := c.call(ctx, "LIST_TRANSACTIONS", remoting.ReqHalfbackListTransactions, ext, nil)
	if err != nil {
		return nil, err
	}
	var out []Transaction
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return nil, fmt.Errorf("LIST_TRANSACTIONS: bad answer: %w", err)
	}
	return out, nil
}

// ResumeTransaction puts a parked transaction back to checking, its check
// count reset. id is the half message's offset message id, its
// transaction id (UNIQ_KEY) or its commit-log offset.
func (c *Client) ResumeTransaction(ctx context.Context, id string) (Transaction, error) {
	return c.transactionCall(ctx, "RESUME_TRANSACTION", remoting.ReqHalfbackResumeTransaction, map[string]string{"id": id})
}

// ResolveTransaction commits (commit true) or rolls back an open
// transaction on an operator's word, as its producer would.
func (c *Client) ResolveTransaction(ctx context.Context, id string, commit bool) (Transaction, error) {
	outcome := "rollback"
	if commit {
		outcome = "commit"
	}
	return c.transactionCall(ctx, "RESOLVE_TRANSACTION", remoting.ReqHalfbackResolveTransaction,
		map[string]string{"id": id, "outcome": outcome})
}

func (c *Client) transactionCall(ctx context.Context, op string, code int16, ext map[string]string) (Transaction, error) {
	if ext["id"] == "" {
		return Transaction{}, fmt.Errorf("%w: empty transaction id", ErrInvalid)
	}
	resp, err := c.call(ctx, op, code, ext, nil)
	if err != nil {
		return Transaction{}, err
	}
	var t Transaction
	if err := json.Unmarshal(resp.Body, &t); err != nil {
		return Transaction{}, fmt.Errorf("%s: bad answer: %w", op, err)
	}
	return t, nil
}
