#!/usr/bin/env bash
# The order/payment demo (`make demo`): a Temporal dev server, the worker
# with its embedded broker and Kafka mirror, a development Kafka (kfake),
# the coupon consumer, a Kafka consumer of the mirrored OrderPaid events,
# and the starter with a handful of orders, some paid and some left to
# time out. It prints the
# outcome, leaves everything running for the Temporal UI, and stops what
# it started on Ctrl-C.
#
# Environment (all optional):
#   TEMPORAL          the Temporal CLI (make passes the pinned one)
#   ORDERS, PAY_RATIO how many orders, which fraction is paid (6, 0.5)
#   TEMPORAL_PORT, TEMPORAL_UI_PORT   (7233, 8233)
#   KAFKA_PORT        the development Kafka's port (9092)
#   NAMESRV_PORT, BROKER_PORT   the embedded name server's and broker's (9876, 10911)
#   KEEP=1            keep the data directory (broker, orders.db, logs)
#   STOP_GRACE        whole seconds a child has to exit on SIGTERM before SIGKILL (5)
set -euo pipefail
# Each long-running child starts in a session of its own (bg), so Ctrl-C
# in the terminal reaches only this script and whatever it runs in the
# foreground (a wait, the starter); the script then stops the children
# (stop_all: SIGTERM, SIGKILL after STOP_GRACE seconds). (Job control,
# set -m, would also give each foreground command the terminal, and
# Ctrl-C would stop only that.)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/procs.sh
source scripts/procs.sh

TEMPORAL=${TEMPORAL:-temporal}
ORDERS=${ORDERS:-6}
PAY_RATIO=${PAY_RATIO:-0.5}
TEMPORAL_PORT=${TEMPORAL_PORT:-7233}
TEMPORAL_UI_PORT=${TEMPORAL_UI_PORT:-8233}
KAFKA_PORT=${KAFKA_PORT:-9092}
NAMESRV_PORT=${NAMESRV_PORT:-9876}
BROKER_PORT=${BROKER_PORT:-10911}
BROKER=127.0.0.1:$BROKER_PORT
CONFIG=samples/orderpayment/demo.yaml
DIR=$(mktemp -d "${TMPDIR:-/tmp}/halfback-demo.XXXXXX")
export HALFBACK_STORE_DATADIR=$DIR/data
export HALFBACK_TEMPORAL_HOSTPORT=127.0.0.1:$TEMPORAL_PORT
# The worker's embedded broker and name server; every other process finds
# the name server through namesrv.listenAddr (worker.embeddedBroker).
export HALFBACK_NAMESRV_LISTENADDR=127.0.0.1:$NAMESRV_PORT HALFBACK_BROKER_LISTENADDR=$BROKER
# Every process traces into one file (OTLP JSON lines), so each order's
# trace id links its workflow, its messages and their consumers, Kafka's too.
export HALFBACK_TELEMETRY_EXPORTER=file HALFBACK_TELEMETRY_FILE=$DIR/traces.jsonl
# The worker's embedded broker mirrors order-events to Kafka.
MIRROR_ENV=(HALFBACK_MIRROR_KAFKA_ENABLED=true "HALFBACK_MIRROR_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
	HALFBACK_MIRROR_KAFKA_TOPICS=order-events)

cleanup() {
	trap - INT TERM EXIT
	# The terminal may be gone (its window closed: SIGHUP), and an echo to
	# it fails: with errexit that would end the script here and leave every
	# child, each in a session of its own, running and holding its port.
	set +e
	trap '' PIPE
	echo
	echo "stopping..."
	stop_all
	if [[ ${KEEP:-} == 1 ]]; then echo "data and logs kept in $DIR"; else rm -rf "$DIR"; fi
	echo "stopped."
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# die stops the demo; its logs are kept, as its message points to them.
die() {
	echo "demo: $*" >&2
	KEEP=1
	exit 1
}

# in_use reports whether something listens on 127.0.0.1:$1.
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for runs "$2..." until it succeeds; after $1 seconds it gives up.
wait_for() {
	local secs=$1; shift
	for ((t = 0; t < secs * 5; t++)); do
		"$@" && return 0
		sleep 0.2
	done
	return 1
}

# alive_and_logged: process $1 runs and its log $2 has line $3.
alive_and_logged() {
	kill -0 "$1" 2>/dev/null || { echo "demo: process $1 exited; its log:" >&2; cat "$2" >&2; exit 1; }
	grep -q "$3" "$2"
}

for port in "$TEMPORAL_PORT" "$TEMPORAL_UI_PORT" "$NAMESRV_PORT" "$BROKER_PORT" "$KAFKA_PORT"; do
	! in_use "$port" || die "port $port on 127.0.0.1 is in use (a Temporal server or 'make broker' running?); stop it, or pick other ports (TEMPORAL_PORT, TEMPORAL_UI_PORT, NAMESRV_PORT, BROKER_PORT, KAFKA_PORT)"
done

echo "== building the worker and the samples into bin/"
go build -o bin/ ./worker ./samples/orderpayment/starter ./samples/orderpayment/payer
go build -o bin/coupon-consumer ./samples/coupon/consumer
go build -o bin/ ./samples/kafka-dev ./samples/kafka-consumer
go build -o bin/halfback ./cmd/halfback

echo "== starting the Temporal dev server (in memory) on 127.0.0.1:$TEMPORAL_PORT"
bg "$DIR/temporal.log" "$TEMPORAL" server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --ui-ip 127.0.0.1 \
	--ui-port "$TEMPORAL_UI_PORT" --log-level warn
wait_for 60 "$TEMPORAL" operator cluster health --address "127.0.0.1:$TEMPORAL_PORT" >/dev/null 2>&1 ||
	{ cat "$DIR/temporal.log" >&2; die "the Temporal dev server did not come up"; }

echo "== starting a development Kafka (kfake, in memory) on 127.0.0.1:$KAFKA_PORT"
bg "$DIR/kafka.log" bin/kafka-dev --addr "127.0.0.1:$KAFKA_PORT" --topics order-events:4
wait_for 30 alive_and_logged "${pids[-1]}" "$DIR/kafka.log" 'msg="kafka dev server ready"' || die "the development Kafka did not start; see $DIR/kafka.log"

echo "== starting the worker (embedded broker on $BROKER, name server 127.0.0.1:$NAMESRV_PORT, Kafka mirror of order-events)"
bg "$DIR/worker.log" env "${MIRROR_ENV[@]}" bin/worker --config "$CONFIG"
wait_for 60 alive_and_logged "${pids[-1]}" "$DIR/worker.log" 'msg="worker ready"' || die "the worker did not start; see $DIR/worker.log"

echo "== starting the coupon consumer"
bg "$DIR/coupon.log" bin/coupon-consumer --config "$CONFIG"
wait_for 30 alive_and_logged "${pids[-1]}" "$DIR/coupon.log" 'msg="coupon consumer ready"' || die "the coupon consumer did not start"

echo "== starting a Kafka consumer of the mirrored OrderPaid events"
setsid bin/kafka-consumer --config "$CONFIG" --brokers "127.0.0.1:$KAFKA_PORT" --topic order-events --tag OrderPaid \
	--group demo-analytics --from oldest >"$DIR/kafka-consumer.out" 2>"$DIR/kafka-consumer.log" &
pids+=($!)
wait_for 30 alive_and_logged "${pids[-1]}" "$DIR/kafka-consumer.log" 'msg="kafka consumer ready"' || die "the Kafka consumer did not start"

echo "== $ORDERS orders, a fraction $PAY_RATIO of them paid; unpaid ones time out after ~12s (payment.checkLevel 4 = 4s, maxChecks 3)"
status=0
bin/starter --config "$CONFIG" --orders "$ORDERS" --pay-ratio "$PAY_RATIO" --wait --wait-timeout 2m | tee "$DIR/starter.out" || status=$?

# Coupons arrive asynchronously, after each OrderPaid commit.
paid=$(sed -n 's/.*; paid \([0-9]*\),.*/\1/p' "$DIR/starter.out")
coupons_at_least() { (($(grep -c 'msg="coupon granted"' "$DIR/coupon.log") >= $1)); }
wait_for 15 coupons_at_least "${paid:-0}" || true
echo "== coupons granted by the downstream consumer (one per paid order, exactly once):"
grep 'msg="coupon granted"' "$DIR/coupon.log" | sed 's/.*msg="coupon granted" /   /' || echo "   none"
[[ $status == 0 ]] || echo "demo: the starter exited $status: failed orders, or it gave up waiting (see above)" >&2

# The mirror copies each OrderPaid once committed; the Kafka consumer
# prints it with the trace id it continues (the starter's trace of that order).
kafka_at_least() { (($(wc -l <"$DIR/kafka-consumer.out") >= $1)); }
wait_for 15 kafka_at_least "${paid:-0}" || true
echo "== OrderPaid events read from Kafka (mirrored by the broker; key = order id):"
sed 's/^/   /' "$DIR/kafka-consumer.out"
[[ -s $DIR/kafka-consumer.out ]] || echo "   none"
echo "== the mirror's progress: bin/halfback mirror status"
env "${MIRROR_ENV[@]}" bin/halfback mirror status --config "$CONFIG" --broker "$BROKER" | sed 's/^/   /' || true

# The broker's own record of each message's lifecycle, by order id (the
# messages' key): one paid and one timed-out order.
for outcome in PAID CANCELLED; do
	order=$(awk -v o="$outcome" '$4 == o {print $1; exit}' "$DIR/starter.out")
	[[ -n $order ]] || continue
	echo "== lifecycle of the messages of $order ($outcome): bin/halfback trace --broker $BROKER $order"
	bin/halfback trace --broker "$BROKER" "$order" | sed 's/^/   /' || true
done

cat <<MSG

Temporal UI:  http://127.0.0.1:$TEMPORAL_UI_PORT/namespaces/default/workflows
Logs:         $DIR/{temporal,kafka,worker,coupon,kafka-consumer}.log
Traces:       $DIR/traces.jsonl (OTLP JSON lines; bin/halfback trace <trace id> --broker $BROKER)
Kafka:        127.0.0.1:$KAFKA_PORT; the mirror's lag:
  HALFBACK_MIRROR_KAFKA_TOPICS=order-events bin/halfback mirror status --broker $BROKER

In another terminal, start more orders and pay one yourself:
  export HALFBACK_STORE_DATADIR=$HALFBACK_STORE_DATADIR HALFBACK_TEMPORAL_HOSTPORT=$HALFBACK_TEMPORAL_HOSTPORT
  export HALFBACK_NAMESRV_LISTENADDR=$HALFBACK_NAMESRV_LISTENADDR HALFBACK_BROKER_LISTENADDR=$HALFBACK_BROKER_LISTENADDR
  bin/starter --config $CONFIG --orders 2 --pay-ratio 0     # prints the order ids
  bin/payer --config $CONFIG --order <order id>            # within ~12s

Everything keeps running; Ctrl-C stops it.
MSG
wait "${pids[0]}" || true
die "the Temporal dev server exited; see $DIR/temporal.log"
