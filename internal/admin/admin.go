package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// DefaultTimeout bounds one request when the caller's context has no
// deadline of its own.
const DefaultTimeout = 10 * time.Second

// toolsGroup is the group name administrative pulls use (RocketMQ's
// MixAll.TOOLS_CONSUMER_GROUP); they commit nothing for it.
const toolsGroup = "TOOLS_CONSUMER"

// Errors the client returns besides [*BrokerError].
var (
	// ErrInvalid marks an argument refused before anything is sent (a bad
	// topic name, a malformed message id, a negative queue count).
	ErrInvalid = errors.New("admin: invalid argument")
	// ErrNotDLQ means a message given to ResendDLQ is not in that group's
	// dead-letter queue.
	ErrNotDLQ = errors.New("admin: message is not in the group's dead-letter queue")
	// ErrAlreadyResent means ResendDLQ found a copy of the dead letter
	// already sent back to its topic (resend with force to send another).
	ErrAlreadyResent = errors.New("admin: dead letter already resent")
)

// BrokerError is a response the broker answered with a failure code.
type BrokerError struct {
	// Op is the request that failed, as RocketMQ names it.
	Op string
	// Code is the response code (remoting.RespTopicNotExist, ...).
	Code int16
	// Remark is the broker's explanation.
	Remark string
}

func (e *BrokerError) Error() string {
	return fmt.Sprintf("%s: broker answered code %d: %s", e.Op, e.Code, e.Remark)
}

// Client is one connection to a broker. Its methods may be called from
// several goroutines.
type Client struct {
	conn *remoting.Conn
	addr string
}

// Dial connects to the broker at addr (host:port).
func Dial(ctx context.Context, addr string) (*Client, error) {
	if _, ok := ctx.Deadline(); !ok { // as invoke: a broker that does not answer fails the command
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	conn, err := remoting.Dial(ctx, addr, remoting.DialOptions{})
	if err != nil {
		return nil, fmt.Errorf("admin: connect to broker %s: %w", addr, err)
	}
	return &Client{conn: conn, addr: addr}, nil
}

// Addr is the broker's address as given to Dial.
func (c *Client) Addr() string { return c.addr }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// invoke sends a request and returns the response whatever its code; only
// transport failures are errors.
func (c *Client) invoke(ctx context.Context, op string, code int16, ext map[string]string, body []byte) (*remoting.Command, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	req := remoting.NewRequest(code, ext)
	req.Body = body
	resp, err := c.conn.Invoke(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%s to %s: %w", op, c.addr, err)
	}
	return resp, nil
}

// call is invoke for requests whose only good answer is SUCCESS.
func (c *Client) call(ctx context.Context, op string, code int16, ext map[string]string, body []byte) (*remoting.Command, error) {
	resp, err := c.invoke(ctx, op, code, ext, body)
	if err != nil {
		return nil, err
	}
	if resp.Code != remoting.RespSuccess {
		return nil, brokerError(op, resp)
	}
	return resp, nil
}

func brokerError(op string, resp *remoting.Command) *BrokerError {
	return &BrokerError{Op: op, Code: resp.Code, Remark: resp.Remark}
}
