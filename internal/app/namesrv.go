package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/halfbackmq/halfback/client"
)

// AwaitNamesrv returns once a name server of c answered for topic (a
// route, or none yet: a consumer picks the topic up when it is created),
// or ctx's error if ctx ends first. After each failed try it logs that
// who is not ready and still trying, naming the name servers addrs, and
// tries again after every. The commands that use an external name server call it
// before their "ready" line, which scripts wait for: their clients keep
// asking by themselves, but until a name server answers no message flows.
func AwaitNamesrv(ctx context.Context, c *client.Client, addrs []string, topic string,
	every time.Duration, who string, log *slog.Logger) error {
	for {
		_, err := c.SubscribeQueues(ctx, topic)
		if err == nil || errors.Is(err, client.ErrTopicNotFound) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn(who+" not ready: no name server answers; still trying", "namesrv", addrs, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}
