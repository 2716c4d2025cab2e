package client_test

import (
	"io"
	"log"
	"log/slog"
	"os"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/broker/store"
	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/namesrv"
)

// exampleClient starts an in-process name server and broker in a
// temporary directory and returns a client of them, and a function that
// stops it all.
func exampleClient() (*client.Client, func()) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir, err := os.MkdirTemp("", "halfback-client-example")
	if err != nil {
		log.Fatal(err)
	}
	ns, err := namesrv.Open(namesrv.Options{ListenAddr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	b, err := broker.Open(broker.Options{Store: store.Options{Dir: dir, SegmentSize: 16 << 20},
		ListenAddr: "127.0.0.1:0", NamesrvAddrs: []string{ns.Addr()}, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(client.Options{NamesrvAddrs: []string{ns.Addr()}, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	return c, func() {
		c.Close()
		b.Close()
		ns.Close()
		os.RemoveAll(dir)
	}
}
