package main

import (
	"testing"

	"github.com/halfbackmq/halfback/config"
	"github.com/halfbackmq/halfback/txnbridge"
)

// payment.maxChecks and the plugin's MaxPaymentChecks have one bound,
// written twice because package config imports nothing of Temporal's: a
// config that loads never fails NewPlugin.
func TestPaymentMaxChecksLimitsAgree(t *testing.T) {
	if config.PaymentMaxChecksLimit != txnbridge.MaxPaymentChecksLimit {
		t.Fatalf("config.PaymentMaxChecksLimit %d, txnbridge.MaxPaymentChecksLimit %d",
			config.PaymentMaxChecksLimit, txnbridge.MaxPaymentChecksLimit)
	}
}
