// Package scripts holds no Go code: its tests check the shell helpers
// of the scripts beside them.
package scripts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain runs the test binary as a child process of the script when
// procsChildEnv says so.
func TestMain(m *testing.M) {
	if mode := os.Getenv(procsChildEnv); mode != "" {
		runChild(mode, os.Getenv(procsOutEnv))
		return
	}
	os.Exit(m.Run())
}

const (
	procsChildEnv = "HALFBACK_PROCS_TEST_CHILD" // "stubborn" ignores SIGTERM
	procsOutEnv   = "HALFBACK_PROCS_TEST_OUT"   // where the child writes "pid addr"
)

// runChild listens on a loopback port, like a demo server, and writes its
// pid and address to out; it serves until killed, or a minute, so that a
// failed test leaves nothing running for long.
func runChild(mode, out string) {
	if mode == "stubborn" {
		signal.Ignore(syscall.SIGTERM)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Exit(2)
	}
	tmp := out + ".tmp"
	if os.WriteFile(tmp, fmt.Appendf(nil, "%d %s", os.Getpid(), l.Addr()), 0o644) != nil || os.Rename(tmp, out) != nil {
		os.Exit(2)
	}
	time.AfterFunc(time.Minute, func() { os.Exit(3) })
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(0)
		}
		c.Close()
	}
}

// stop_all (scripts/procs.sh, demo.sh's cleanup) ends within its grace
// period even when a child ignores SIGTERM, and leaves no process and no
// port behind: it kills what did not stop.
func TestStopAllKillsAChildThatIgnoresSIGTERM(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := `set -euo pipefail
source ./procs.sh
STOP_GRACE=1
for mode in stubborn polite; do
	bg "$DIR/$mode.log" env ` + procsChildEnv + `=$mode ` + procsOutEnv + `="$DIR/$mode" "$EXE"
done
until [[ -s $DIR/stubborn && -s $DIR/polite ]]; do sleep 0.05; done
stop_all
echo stopped
`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Env = append(os.Environ(), "DIR="+dir, "EXE="+exe)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()

	children := map[string][2]string{} // mode: pid, addr
	for _, mode := range []string{"stubborn", "polite"} {
		b, err := os.ReadFile(filepath.Join(dir, mode))
		if err != nil {
			t.Fatalf("the %s child did not start: %v; stderr %q", mode, err, stderr.String())
		}
		pid, addr, _ := strings.Cut(string(b), " ")
		children[mode] = [2]string{pid, addr}
		if n, err := strconv.Atoi(pid); err == nil {
			t.Cleanup(func() { _ = syscall.Kill(n, syscall.SIGKILL) }) // if stop_all failed
		}
	}
	if runErr != nil || stdout.String() != "stopped\n" {
		t.Fatalf("the script: %v (context: %v), stdout %q, stderr %q; want stop_all to return", runErr, ctx.Err(),
			stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "ignored SIGTERM") {
		t.Errorf("stderr %q, want a line saying the stubborn child was killed", stderr.String())
	}
	for mode, c := range children {
		pid, _ := strconv.Atoi(c[0])
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("the %s child %d still exists after stop_all (kill -0: %v)", mode, pid, err)
		}
		l, err := net.Listen("tcp", c[1])
		if err != nil {
			t.Errorf("the %s child's port %s is still held after stop_all: %v", mode, c[1], err)
			continue
		}
		l.Close()
	}
}
