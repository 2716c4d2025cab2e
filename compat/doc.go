// Package compat holds the compatibility tests that run the official Apache
// RocketMQ Go client (github.com/apache/rocketmq-client-go/v2 v2.1.2)
// against an in-process halfback name server and broker, and ali-ons, a
// Node.js port of the RocketMQ Java client (compat/node, alions_test.go),
// against the same. It is a module of its own so the client's dependencies
// stay out of halfback's go.mod; `make test` runs it.
package compat
