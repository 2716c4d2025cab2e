package orderpayment

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/halfbackmq/halfback/workflows"
)

func TestShouldPayPaysRoundedRatioSpreadEvenly(t *testing.T) {
	for _, tt := range []struct {
		n     int
		ratio float64
		want  string // x = paid
	}{
		{6, 0.5, "x.x.x."},
		{4, 0.25, ".x.."},
		{5, 0, "....."},
		{5, 1, "xxxxx"},
		{10, 0.3, ".x..x...x."},
		{3, 0.5, "x.x"},
	} {
		got := ""
		for i := range tt.n {
			if ShouldPay(i, tt.n, tt.ratio) {
				got += "x"
			} else {
				got += "."
			}
		}
		if got != tt.want {
			t.Errorf("n=%d ratio=%v: %s, want %s", tt.n, tt.ratio, got, tt.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	ok := Options{Orders: 1, PayRatio: 0.5, TaskQueue: "q", Prefix: "p"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Options){
		"no orders":       func(o *Options) { o.Orders = 0 },
		"ratio above 1":   func(o *Options) { o.PayRatio = 1.5 },
		"negative ratio":  func(o *Options) { o.PayRatio = -0.1 },
		"no task queue":   func(o *Options) { o.TaskQueue = "" },
		"no prefix":       func(o *Options) { o.Prefix = "" },
		"negative amount": func(o *Options) { o.Amount = -1 },
		"spaced prefix":   func(o *Options) { o.Prefix = "my run" },
		"long order ids":  func(o *Options) { o.Prefix, o.Orders = strings.Repeat("p", 98), 10 },
	} {
		o := ok
		mod(&o)
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: %v, want ErrInvalidOptions", name, err)
		}
	}
}

func TestInput(t *testing.T) {
	o := Options{Prefix: "run7"}.withDefaults()
	in := o.input(4)
	want := workflows.OrderInput{OrderID: "run7-5", User: "user-2", SKU: DefaultSKU, Qty: 1, Amount: DefaultAmount}
	if in != want {
		t.Errorf("input(4) = %+v, want %+v", in, want)
	}
}

// TestSettleCountsIntendedEnds: an order counts as paid or cancelled only
// if it ended as the starter meant; anything else is a failure.
func TestSettleCountsIntendedEnds(t *testing.T) {
	res := func(status string) result { return result{res: workflows.OrderResult{Status: status, Checks: 2}} }
	var s Summary
	cases := []struct {
		paySent bool
		r       result
		failed  bool
	}{
		{true, res(workflows.StatusPaid), false},
		{false, res(workflows.StatusCancelled), false},
		{true, res(workflows.StatusCancelled), true},
		{false, res(workflows.StatusPaid), true},
		{false, res(workflows.StatusFailed), true},
		{true, result{err: fmt.Errorf("workflow timed out")}, true},
	}
	for i, c := range cases {
		out := Outcome{OrderID: fmt.Sprint(i), PaySent: c.paySent}
		s.settle(&out, c.r)
		if (out.Error != "") != c.failed {
			t.Errorf("case %d: outcome %+v, want failed=%v", i, out, c.failed)
		}
	}
	if s.Paid != 1 || s.Cancelled != 1 || s.Failed != 4 {
		t.Errorf("summary %+v, want 1 paid, 1 cancelled, 4 failed", s)
	}
}
