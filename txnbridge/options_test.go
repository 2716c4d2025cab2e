package txnbridge_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/client"
	"github.com/halfbackmq/halfback/orders"
	"github.com/halfbackmq/halfback/txnbridge"
)

func TestOptionsValidate(t *testing.T) {
	c := &client.Client{}
	db := &orders.DB{}
	for _, tc := range []struct {
		name string
		o    txnbridge.Options
		want string // "" means valid
	}{
		{"defaults", txnbridge.Options{Client: c, DB: db}, ""},
		{"no client", txnbridge.Options{DB: db}, "Client"},
		{"no db", txnbridge.Options{Client: c}, "DB"},
		{"blank task queue", txnbridge.Options{Client: c, DB: db, TaskQueue: "  "}, "TaskQueue"},
		{"task queue with a space", txnbridge.Options{Client: c, DB: db, TaskQueue: "order-payment "}, "TaskQueue"},
		{"bad group", txnbridge.Options{Client: c, DB: db, ProducerGroup: "a b"}, "ProducerGroup"},
		{"negative level", txnbridge.Options{Client: c, DB: db, PaymentCheckLevel: -1}, "PaymentCheckLevel"},
		{"negative delay", txnbridge.Options{Client: c, DB: db, PaymentCheckDelay: -time.Second}, "PaymentCheckDelay"},
		{"negative checks", txnbridge.Options{Client: c, DB: db, MaxPaymentChecks: -1}, "MaxPaymentChecks"},
		{"most checks", txnbridge.Options{Client: c, DB: db, MaxPaymentChecks: txnbridge.MaxPaymentChecksLimit}, ""},
		{"too many checks", txnbridge.Options{Client: c, DB: db, MaxPaymentChecks: txnbridge.MaxPaymentChecksLimit + 1},
			"MaxPaymentChecks 501 is above 500"},
		{"bad consumer", txnbridge.Options{Client: c, DB: db, CheckConsumer: client.ConsumerOptions{Concurrency: -1}}, "CheckConsumer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := txnbridge.NewPlugin(tc.o); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, txnbridge.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrInvalidOptions naming %s", err, tc.want)
			}
			if _, err := txnbridge.NewPlugin(tc.o); !errors.Is(err, txnbridge.ErrInvalidOptions) {
				t.Fatalf("NewPlugin: %v", err)
			}
		})
	}
}

func TestPluginName(t *testing.T) {
	p, err := txnbridge.NewPlugin(txnbridge.Options{Client: &client.Client{}, DB: &orders.DB{}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != txnbridge.PluginName {
		t.Fatalf("name %q", p.Name())
	}
}
