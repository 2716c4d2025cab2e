package txnbridge

import (
	"context"

	"github.com/halfbackmq/halfback/client"
)

// StartCheckConsumer starts the plugin's check consumer as a worker's
// start does, with o's defaults, signalling through s instead of
// o.Temporal.
func StartCheckConsumer(ctx context.Context, o Options, s Signaler) (*client.PushConsumer, error) {
	o = o.withDefaults()
	return startCheckConsumer(ctx, o, s, o.Logger)
}
