package message

import (
	"net"
	"strings"
	"testing"
)

func TestUniqIDs(t *testing.T) {
	a, b := NewUniqIDs(net.IPv4(10, 1, 2, 3)), NewUniqIDs(nil)
	seen := map[string]bool{}
	for range 10000 {
		id := a.Next()
		if len(id) != 32 || strings.ToUpper(id) != id || seen[id] {
			t.Fatalf("id %q: want 32 upper-case hex digits, never repeated", id)
		}
		seen[id] = true
	}
	if x := a.Next(); !strings.HasPrefix(x, "0A010203") {
		t.Fatalf("id %s does not start with the client's address", x)
	}
	if x := b.Next(); !strings.HasPrefix(x, "7F000001") {
		t.Fatalf("id %s of a generator without an address does not start with 127.0.0.1", x)
	}
	if a.Next()[:20] == b.Next()[:20] {
		t.Fatal("two generators share a prefix")
	}
}
