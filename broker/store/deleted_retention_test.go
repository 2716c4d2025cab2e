package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Retention forgets deleted topics on a running store: churn topics
// (create by append, delete) on a running store, lets retention remove
// every segment below the deletions' cuts, and checks that the store
// forgets them without a restart, as Open does (settleDeleted).
func TestRetentionForgetsDeletedTopics(t *testing.T) {
	o, clock := agedOptions(t)
	s := openStore(t, o)
	defer s.Close()
	const topics = 200
	for i := range topics {
		topic := fmt.Sprintf("churn-%d", i)
		mustAppend(t, s, testMsg(topic, 0, 0))
		waitDispatched(t, s)
		if err := s.DeleteTopic(topic); err != nil {
			t.Fatal(err)
		}
	}
	fillSegments(t, s, 100) // ~4 segments past every cut
	clock.Add(2 * time.Hour)
	if err := s.runRetention(); err != nil {
		t.Fatal(err)
	}
	minPhys := s.MinPhysicalOffset()
	s.mu.Lock()
	n := len(s.deleted)
	var below int
	for _, d := range s.deleted {
		if d.Cut <= minPhys {
			below++
		}
	}
	s.mu.Unlock()
	fi, _ := os.Stat(filepath.Join(o.Dir, "deleted-topics.json"))
	var size int64
	if fi != nil {
		size = fi.Size()
	}
	if n != 0 {
		t.Fatalf("after retention removed the log below every cut (min offset %d), the running store still remembers %d deleted topics (%d with cut <= min), deleted-topics.json is %d bytes; only a restart forgets them",
			minPhys, n, below, size)
	}
}
