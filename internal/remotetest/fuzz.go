package remotetest

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
)

// FuzzExt builds a request's ext fields from fuzz input: one "name=value"
// pair a line. A name that is a decimal number picks names[n%len(names)]
// (so that mutations keep hitting real header names); any other name is
// taken as it is. Each value goes through subst (placeholders for offsets
// and ids only known at run time); nil leaves values alone.
func FuzzExt(spec string, names []string, subst *strings.Replacer) map[string]string {
	ext := map[string]string{}
	for _, line := range strings.Split(spec, "\n") {
		if line == "" {
			continue
		}
		name, value, _ := strings.Cut(line, "=")
		if n, err := strconv.ParseUint(name, 10, 32); err == nil && len(names) > 0 {
			name = names[n%uint64(len(names))]
		}
		if subst != nil {
			value = subst.Replace(value)
		}
		ext[name] = value
	}
	return ext
}

// FuzzCode picks a request code: codes[i%len(codes)].
func FuzzCode(i uint8, codes []int16) int16 { return codes[int(i)%len(codes)] }

// FuzzCall sends one fuzz-built request on c and fails the test unless
// the server answers or closes the connection within wait, without a
// handler panic. It returns the answer, and reports false when the
// connection is closed (the caller stops sending on it). A command the
// client cannot encode (a binary key too long, say) is not sent: no
// answer, and true.
func FuzzCall(t testing.TB, c *remoting.Conn, req *remoting.Command, wait time.Duration) (resp *remoting.Command, open bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := c.Invoke(ctx, req)
	switch {
	case errors.Is(err, remoting.ErrConnClosed):
		return nil, false
	case errors.Is(err, remoting.ErrInvalidCommand), errors.Is(err, remoting.ErrFrameTooLarge):
		return nil, true
	case errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("%v: no answer and no close within %v", req, wait)
	case err != nil:
		t.Fatalf("%v: %v", req, err)
	}
	if strings.HasPrefix(resp.Remark, "handler panic") {
		t.Fatalf("%v: handler panicked: %s", req, resp.Remark)
	}
	return resp, true
}

// PanicLog is a slog handler that keeps the records of handler panics
// (and passes nothing on): a panic a handler recovers from is answered
// with SYSTEM_ERROR, which a fuzz target would otherwise take as an
// answer.
type PanicLog struct {
	mu     sync.Mutex
	panics []string
	errs   []string
}

// Logger returns a logger writing to l.
func (l *PanicLog) Logger() *slog.Logger { return slog.New(l) }

// Enabled keeps warnings and errors.
func (l *PanicLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }

// Handle records a panic, and keeps the last error records for reports.
func (l *PanicLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if strings.Contains(r.Message, "panicked") {
		l.panics = append(l.panics, b.String())
	}
	if r.Level >= slog.LevelError {
		l.errs = append(l.errs, b.String())
		if len(l.errs) > 20 {
			l.errs = l.errs[1:]
		}
	}
	return nil
}

// WithAttrs returns l (attributes are not kept).
func (l *PanicLog) WithAttrs([]slog.Attr) slog.Handler { return l }

// WithGroup returns l.
func (l *PanicLog) WithGroup(string) slog.Handler { return l }

// Check fails the test if a panic was logged, with the recent errors.
func (l *PanicLog) Check(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.panics) > 0 {
		p := l.panics
		l.panics = nil
		t.Fatalf("panic logged: %s", strings.Join(p, "\n"))
	}
}

// Errors returns the last error records.
func (l *PanicLog) Errors() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.errs, "\n")
}

// WaitGoroutines fails the test unless the number of goroutines falls to
// at most limit within wait: a request left nothing running behind it.
func WaitGoroutines(t testing.TB, limit int, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > limit {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines %v after the request, want at most %d:\n%s", runtime.NumGoroutine(), wait, limit, buf)
		}
		time.Sleep(time.Millisecond)
	}
}
