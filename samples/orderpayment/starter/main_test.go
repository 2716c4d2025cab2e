package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/samples/orderpayment"
)

func TestPrintSummary(t *testing.T) {
	s := orderpayment.Summary{Started: 2, PaySent: 1, Paid: 1, Failed: 1, Orders: []orderpayment.Outcome{
		{OrderID: "o-1", PaySent: true, Status: "PAID", Checks: 1},
		{OrderID: "o-2", Status: "FAILED", Checks: 0, Error: "ended FAILED, want CANCELLED"},
	}}
	var out bytes.Buffer
	printSummary(&out, s, true)
	want := `o-1                          paid   -> PAID      (1 payment checks)
o-2                          unpaid -> FAILED    (0 payment checks)  FAILED: ended FAILED, want CANCELLED
started 2, pay sent 1; paid 1, cancelled 0, failed 1
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestExitStatus(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--orders", "x"}, 2, "invalid value"},
		{[]string{"prod.yaml"}, 2, `unexpected argument "prod.yaml"`},
		{[]string{"--config", "/nonexistent.yaml"}, 1, "no such file"},
		{[]string{"--config", "", "--orders", "0"}, 1, "Orders 0"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tt.args, &stdout, &stderr); code != tt.code || !strings.Contains(stderr.String(), tt.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.msg)
		}
	}
}
