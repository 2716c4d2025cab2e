package remoting

import (
	"context"
	"net"
)

// Dial connects to a remoting server at addr (host:port) and starts the
// connection's read loop. Requests the server sends on it go to
// opts.Handler. ctx bounds the connect only; close the Conn to end it.
func Dial(ctx context.Context, addr string, opts DialOptions) (*Conn, error) {
	cfg, err := opts.connConfig()
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := newConn(context.Background(), nc, cfg)
	go c.readLoop()
	return c, nil
}
