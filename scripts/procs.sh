# shellcheck shell=bash
# The demo's process helpers, sourced by scripts/demo.sh (and by
# scripts/procs_test.go, which checks that stop_all ends).

# pids are the children bg started, in order.
pids=()

# STOP_GRACE is how many whole seconds stop_all gives the children to
# exit on SIGTERM before it kills them (5 if it is not whole seconds).
STOP_GRACE=${STOP_GRACE:-5}

# bg runs "$@" in the background in a session of its own, its output to
# log $1, and notes its pid for stop_all. The child leads its session's
# process group (no job control here, so setsid need not fork), so
# stop_all reaches whatever it starts in turn.
bg() {
	local log=$1
	shift
	setsid "$@" >"$log" 2>&1 &
	pids+=($!)
}

# stop_all stops every child in pids, newest first: SIGTERM to its
# process group, then, after STOP_GRACE seconds, SIGKILL to the groups of
# those still running (a child that ignores SIGTERM would otherwise hold
# the `wait`, and its port, for ever). It returns once all have exited.
stop_all() {
	local i t pid grace=$STOP_GRACE
	local -a alive=()
	# Whole seconds only: bash arithmetic fails on "1.5" or "5s" (the loop
	# below would kill every child at once), reads "08" as octal, and under
	# set -u aborts on a name (the cleanup would leave the children running).
	if [[ ! $grace =~ ^[0-9]+$ ]]; then
		echo "demo: STOP_GRACE=$grace is not whole seconds; giving the children 5s" >&2
		grace=5
	fi
	grace=$((10#$grace))
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM -- "-${pids[i]}" 2>/dev/null || kill -TERM "${pids[i]}" 2>/dev/null || true
	done
	for ((t = 0; ; t++)); do
		alive=()
		for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
		((${#alive[@]} && t < grace * 10)) || break
		sleep 0.1
	done
	for pid in "${alive[@]}"; do
		echo "demo: process $pid ignored SIGTERM for ${grace}s; killing it" >&2
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	pids=()
}
