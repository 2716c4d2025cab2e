package txnbridgetest

import (
	"strings"
	"testing"
)

func TestTailBufferKeepsTheEnd(t *testing.T) {
	var b tailBuffer
	line := strings.Repeat("x", 99) + "\n"
	for i := 0; i < 3*logTail/len(line); i++ {
		if n, err := b.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	b.Write([]byte("last\n"))
	got := b.String()
	if len(got) != logTail || !strings.HasSuffix(got, line+"last\n") {
		t.Fatalf("kept %d bytes ending %q, want %d ending with the last writes", len(got), got[max(0, len(got)-20):], logTail)
	}
	if len(b.b) > 2*logTail {
		t.Fatalf("holds %d bytes, more than twice the tail", len(b.b))
	}
	var small tailBuffer
	small.Write([]byte("a\n"))
	if small.String() != "a\n" {
		t.Fatalf("short log = %q", small.String())
	}
}

func TestLoggersOfOneTestShareATail(t *testing.T) {
	t.Setenv("HALFBACK_TEST_LOG", "")
	a, b := Logger(t), Logger(t)
	a.Info("from the broker")
	b.Info("from the client")
	got := testLog(t).String()
	if !strings.Contains(got, "from the broker") || strings.Index(got, "from the broker") > strings.Index(got, "from the client") {
		t.Fatalf("the test's log %q, want both records in order", got)
	}
	t.Run("sub", func(t *testing.T) {
		if strings.Contains(testLog(t).String(), "from the broker") {
			t.Fatal("a subtest shares its parent's log")
		}
	})
}
