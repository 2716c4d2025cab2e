// Package fastjson reads the JSON that RocketMQ's Java servers write with
// fastjson where it is not valid JSON: maps with integer keys written
// unquoted ({0:"127.0.0.1:10911"}, a route's brokerAddrs), and maps keyed
// by MessageQueue objects (an offset table).
package fastjson
