// The helpers run setsid(1) (util-linux) and the tests signal process
// groups: Linux only, as the demo is. Elsewhere the package is empty.

//go:build linux

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
	procsChildEnv = "HALFBACK_PROCS_TEST_CHILD" // "stubborn" ignores SIGTERM, "slow" takes a second to exit on it
	procsOutEnv   = "HALFBACK_PROCS_TEST_OUT"   // where the child writes "pid addr"
)

// runChild listens on a loopback port, like a demo server, and writes its
// pid and address to out; it serves until killed, or a minute, so that a
// failed test leaves nothing running for long.
func runChild(mode, out string) {
	switch mode {
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
	case "slow":
		// Exits a second after SIGTERM, having written out+".exited": a
		// server closing down, which stop_all must give the time.
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		go func() {
			<-term
			time.Sleep(time.Second)
			if os.WriteFile(out+".exited", nil, 0o644) != nil {
				os.Exit(2)
			}
			os.Exit(0)
		}()
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

// A STOP_GRACE that is not whole seconds ("1.5", "5s", a name) neither
// cuts the grace short (every child killed at once, each said to have
// ignored SIGTERM) nor aborts the cleanup (set -u: a name is an unbound
// variable, and the children would be left running): stop_all says so and
// gives the default 5 seconds. "08", which bash arithmetic reads as
// octal (and refuses), is 8 seconds.
func TestStopAllWithABadStopGraceGivesTheDefault(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		grace   string
		refused bool
	}{{"1.5", true}, {"5s", true}, {"abc", true}, {"08", false}} {
		grace := tc.grace
		t.Run(grace, func(t *testing.T) {
			dir := t.TempDir()
			script := `set -euo pipefail
source ./procs.sh
STOP_GRACE=$GRACE
bg "$DIR/slow.log" env ` + procsChildEnv + `=slow ` + procsOutEnv + `="$DIR/slow" "$EXE"
until [[ -s $DIR/slow ]]; do sleep 0.05; done
stop_all
echo stopped
`
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", "-c", script)
			cmd.Env = append(os.Environ(), "DIR="+dir, "EXE="+exe, "GRACE="+grace)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			runErr := cmd.Run()
			if b, err := os.ReadFile(filepath.Join(dir, "slow")); err == nil {
				pid, _, _ := strings.Cut(string(b), " ")
				if n, err := strconv.Atoi(pid); err == nil {
					t.Cleanup(func() { _ = syscall.Kill(n, syscall.SIGKILL) }) // if stop_all failed
				}
			}
			if runErr != nil || stdout.String() != "stopped\n" {
				t.Fatalf("the script: %v, stdout %q, stderr %q; want stop_all to return", runErr, stdout.String(), stderr.String())
			}
			if _, err := os.Stat(filepath.Join(dir, "slow.exited")); err != nil {
				t.Errorf("the child did not exit by itself (killed within its grace?): %v; stderr %q", err, stderr.String())
			}
			if refused := strings.Contains(stderr.String(), "STOP_GRACE="+grace); refused != tc.refused {
				t.Errorf("stderr %q: STOP_GRACE=%s refused %v, want %v", stderr.String(), grace, refused, tc.refused)
			}
		})
	}
}
