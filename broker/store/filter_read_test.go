package store

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/halfbackmq/halfback/message"
)

// countingFS counts the bytes read from the commit log.
type countingFS struct{ n atomic.Int64 }

func (c *countingFS) fs() fileSystem {
	return wrapFS{"commitlog", func(inner file) file {
		return &hookedFile{file: inner, readAt: func(f file, p []byte, off int64) (int, error) {
			k, err := f.ReadAt(p, off)
			c.n.Add(int64(k))
			return k, err
		}}
	}}
}

// A property filter reads a record's properties, not its body, as
// RocketMQ's isMatchedByCommitLog decodes only the properties: a
// consumer lagging behind large messages its expression skips must not
// make every pull read (and checksum) up to 800 whole records.
func TestGetMessagesFilterReadsPropertiesOnly(t *testing.T) {
	cfs := &countingFS{}
	o := testOptions(t, AsyncFlush)
	o.fs = cfs.fs()
	s := openStore(t, o)
	defer s.Close()
	const n = 40
	body := bytes.Repeat([]byte("x"), 32<<10)
	for i := range n {
		m := testMsg("big", 0, i)
		m.Body = body
		m.Properties = message.Properties{"amount": strings.Repeat("1", i%3+1)}.Encode()
		mustAppend(t, s, m)
	}
	waitFor(t, "dispatch", func() bool { return s.DispatchedOffset() == s.MaxPhysicalOffset() })
	var seen []string
	filter := func(props string) bool {
		v, _ := message.Property(props, "amount")
		seen = append(seen, v)
		return v == "111"
	}
	r, err := s.GetMessages("big", 0, 0, GetOptions{Filter: filter, MaxBytes: 1})
	if err != nil || r.Status != Found || r.Count != 1 || r.NextBeginOffset != 3 {
		t.Fatalf("filtered pull: %+v %v", r, err)
	}
	if len(seen) != 3 || seen[0] != "1" || seen[1] != "11" || seen[2] != "111" {
		t.Fatalf("filter saw %q", seen)
	}
	recs, err := message.DecodeAll(r.Records)
	if err != nil || len(recs) != 1 || !bytes.Equal(recs[0].Body, body) || recs[0].QueueOffset != 2 {
		t.Fatalf("records: %d %v", len(recs), err)
	}
	// A filter that keeps nothing scans the whole queue.
	before := cfs.n.Load()
	r, err = s.GetMessages("big", 0, 0, GetOptions{Filter: func(string) bool { return false }})
	if err != nil || r.Status != NoMatchedMessage || r.NextBeginOffset != n {
		t.Fatalf("pull of nothing: %+v %v", r, err)
	}
	if read := cfs.n.Load() - before; read > n*1024 {
		t.Fatalf("a pull whose filter skipped %d records of %d KiB read %d bytes of the commit log, want at most %d (their properties)",
			n, len(body)>>10, read, n*1024)
	}
}
