package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"

	"github.com/halfbackmq/halfback/message"
)

// deletedTopic is what the store keeps of a deleted topic while the
// commit log may still hold its records (see DeleteTopic).
type deletedTopic struct {
	// Cut is the commit-log offset at which the topic was deleted. Its
	// records below the cut get no consume-queue entry, whether the
	// dispatcher meets them late or recovery replays them; records from
	// the cut on belong to a topic of the same name created since.
	Cut int64 `json:"cut"`
	// QueuesRemoved says the topic's consume-queue directory is gone.
	// Until it is, no record of the topic is dispatched, and Open
	// removes the directory (a crash or a failed removal left it).
	QueuesRemoved bool `json:"queuesRemoved"`
	// MaxOffsets are the max offsets (one past the last message) the
	// topic's queues had when it was deleted, by queue id; a queue not
	// listed had no message. A read past the end of a queue the topic
	// has again moves to the queue's min only at or below its bound
	// there (see GetMessages). Nil, as in a file written before the
	// field was, means no bound is known: every read past the end moves
	// to the min, until the deletion is forgotten.
	MaxOffsets map[int32]int64 `json:"maxOffsets"`
}

// DeleteTopic deletes every consume queue of topic, as RocketMQ's
// deleteTopics does: the topic's messages can no longer be reached through
// a queue (their commit-log records stay until retention removes their
// segments, and a key query finds them until then), and a message
// appended to the topic afterwards starts its queue at offset 0 again. A
// topic with no queue and no append since Open has nothing to delete;
// DeleteTopic then does nothing.
//
// The deletion is recorded, with its cut (the commit-log offset of the
// next append) and the max offset of each of its queues, in the file
// deleted-topics.json before any file is removed; appends wait for that
// one small write. Records of the topic below the cut never get a queue
// entry again: not from the dispatcher meeting them after the deletion,
// nor from a recovery that replays the log from an older checkpoint.
// Records from the cut on start the new queues at 0. Open forgets a
// deletion once retention has removed every segment below its cut.
//
// No dispatch or checkpoint runs while DeleteTopic does, so no fsync
// meets a removed file or directory. Readers holding a queue find it
// empty. It returns ErrBadMessage for an invalid topic name, ErrClosed
// after Close, and the store's failure (ErrWriteFailed) if the store has
// failed. If the deletion cannot be recorded, nothing changes. If the
// queue files cannot be removed after that, the store fails
// (ErrWriteFailed), no record of the topic is dispatched until it is
// reopened, and the next Open removes them.
func (s *Store) DeleteTopic(topic string) error {
	if err := message.ValidateTopic(topic); err != nil {
		return fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	s.cpMu.Lock()
	defer s.cpMu.Unlock()
	s.dispatchMu.Lock()
	defer s.dispatchMu.Unlock()
	d, err := s.cutTopic(topic)
	if err != nil || d.Cut < 0 {
		return err
	}
	s.cqs.removeTopic(topic)
	if err := removeQueueDir(s.cqs.dir, topic); err != nil {
		// Until Open finishes the removal.
		s.setDeleted(topic, deletedTopic{Cut: math.MaxInt64, MaxOffsets: d.MaxOffsets})
		return s.fail(fmt.Errorf("delete topic %s: remove its consume queues: %w", topic, err))
	}
	d.QueuesRemoved = true
	next := maps.Clone(s.deleted)
	next[topic] = d
	if err := writeDeleted(s.deletedPath(), next); err != nil {
		// The file still says the removal is to be done: Open would
		// remove the queues the topic gets from now on.
		s.setDeleted(topic, deletedTopic{Cut: math.MaxInt64, MaxOffsets: d.MaxOffsets})
		return s.fail(fmt.Errorf("delete topic %s: record it: %w", topic, err))
	}
	s.setDeleted(topic, d)
	s.opts.Logger.Info("deleted the consume queues of a topic", "topic", topic, "cut", d.Cut)
	return nil
}

// cutTopic records topic's deletion at the next append's offset, with
// the max offset of each of its queues, and returns the record, unless
// the topic has nothing to delete (its Cut is then -1). In the same
// critical section the topic's next queue offsets are forgotten, so that
// every later append to it is assigned queue offsets from 0 and lands at
// or past the cut. The caller holds dispatchMu.
func (s *Store) cutTopic(topic string) (deletedTopic, error) {
	none := deletedTopic{Cut: -1}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return none, ErrClosed
	}
	if s.failed != nil {
		return none, s.failed
	}
	// The queues' max offsets: the next offsets appends would get (the
	// queues may not have them all yet), and the queues' own.
	maxOffs := s.cqs.topicMax(topic)
	var keys []queueKey
	for k, qo := range s.queueNext {
		if k.topic == topic {
			keys = append(keys, k)
			if maxOffs == nil {
				maxOffs = make(map[int32]int64)
			}
			maxOffs[k.qid] = max(maxOffs[k.qid], qo)
		}
	}
	if maxOffs == nil {
		return none, nil
	}
	d := deletedTopic{Cut: s.next, MaxOffsets: maxOffs}
	if prev, ok := s.deleted[topic]; ok {
		// A deletion still remembered: its consumers may be running too.
		d.MaxOffsets = mergeMax(prev.MaxOffsets, maxOffs)
	}
	next := maps.Clone(s.deleted)
	next[topic] = d
	if err := writeDeleted(s.deletedPath(), next); err != nil {
		return none, fmt.Errorf("store: delete topic %s: record it: %w", topic, err)
	}
	s.deleted = next
	for _, k := range keys {
		delete(s.queueNext, k)
	}
	return d, nil
}

// mergeMax returns the larger bound of a and b for each queue either
// lists; nil (no bound known) if either is nil.
func mergeMax(a, b map[int32]int64) map[int32]int64 {
	if a == nil || b == nil {
		return nil
	}
	m := maps.Clone(b)
	for qid, off := range a {
		m[qid] = max(m[qid], off)
	}
	return m
}

// setDeleted sets topic's entry in the deleted topics, replacing the map
// (DeleteTopic). The caller holds dispatchMu, under which the dispatcher
// reads them; s.mu is taken too, for staleOffset.
func (s *Store) setDeleted(topic string, d deletedTopic) {
	next := maps.Clone(s.deleted)
	next[topic] = d
	s.mu.Lock()
	s.deleted = next
	s.mu.Unlock()
}

// staleOffset reports whether offset, past the end of topic/qid, may be
// a consumer's offset in the topic before it was deleted: the deletion is
// remembered (the log may still hold the topic's records from before it,
// so any queue the topic has now was created since), and offset is at
// most the max offset the queue had then, or that max is not known.
func (s *Store) staleOffset(topic string, qid int32, offset int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deleted[topic]
	if !ok {
		return false
	}
	if d.MaxOffsets == nil {
		return true
	}
	return offset <= d.MaxOffsets[qid]
}

// beforeDeletion reports a record of a deleted topic from before the
// deletion: it gets no consume-queue entry (it is still indexed by key,
// as its segment's index is rebuilt from the log). The caller dispatches,
// holding dispatchMu or running Open's recovery.
func (s *Store) beforeDeletion(r *dispatchRecord) bool {
	if len(s.deleted) == 0 {
		return false
	}
	d, ok := s.deleted[r.topic]
	return ok && r.phys < d.Cut
}

// removeQueueDir removes the consume-queue directory of topic under root
// and makes the removal durable.
func removeQueueDir(root, topic string) error {
	if err := removeAll(filepath.Join(root, topic)); err != nil {
		return err
	}
	return syncDir(root)
}

func (s *Store) deletedPath() string { return filepath.Join(s.opts.Dir, "deleted-topics.json") }

// openDeleted loads the deleted topics (Open, once the queue table is
// open) and finishes the removal of any whose queues a crash or a failed
// removal left.
func (s *Store) openDeleted() error {
	path := s.deletedPath()
	s.deleted = make(map[string]deletedTopic)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	if err := json.Unmarshal(b, &s.deleted); err != nil {
		return fmt.Errorf("%w: deleted topics %s: %w", ErrCorrupt, path, err)
	}
	if s.deleted == nil { // the file said null
		s.deleted = make(map[string]deletedTopic)
	}
	changed := false
	for topic, d := range s.deleted {
		if d.QueuesRemoved {
			continue
		}
		if err := message.ValidateTopic(topic); err != nil {
			return fmt.Errorf("%w: deleted topics %s: %w", ErrCorrupt, path, err)
		}
		s.opts.Logger.Warn("removing the consume queues of a deleted topic that an interrupted deletion left", "topic", topic)
		s.cqs.removeTopic(topic)
		if err := removeQueueDir(s.cqs.dir, topic); err != nil {
			return fmt.Errorf("store: remove the consume queues of deleted topic %s: %w", topic, err)
		}
		d.QueuesRemoved = true
		s.deleted[topic] = d
		changed = true
	}
	if changed {
		return writeDeleted(path, s.deleted)
	}
	return nil
}

// settleDeleted brings the deleted topics in line with the log Open
// recovered, up to end. A cut past end is moved back to it: the records
// between were lost in a crash, and the topic's next appends land from
// end on. A deletion whose cut retention has passed is forgotten: no
// record of the topic below it is left.
func (s *Store) settleDeleted(end int64) error {
	minPhys := s.log.minOffset()
	changed := false
	for topic, d := range s.deleted {
		switch {
		case d.Cut <= minPhys:
			delete(s.deleted, topic)
		case d.Cut > end:
			d.Cut = end
			s.deleted[topic] = d
		default:
			continue
		}
		changed = true
	}
	if !changed {
		return nil
	}
	return writeDeleted(s.deletedPath(), s.deleted)
}

// writeDeleted replaces the deleted-topics file with m, atomically.
func writeDeleted(path string, m map[string]deletedTopic) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

// forgetDeleted forgets the deletions whose cut retention has passed
// (minPhys is the log's new min offset), as settleDeleted does at Open:
// no record of the topic below the cut is left. A failed write of the
// file keeps them; the next removal tries again.
func (s *Store) forgetDeleted(minPhys int64) {
	s.dispatchMu.Lock()
	defer s.dispatchMu.Unlock()
	var next map[string]deletedTopic
	for topic, d := range s.deleted {
		if d.Cut <= minPhys && d.QueuesRemoved {
			if next == nil {
				next = maps.Clone(s.deleted)
			}
			delete(next, topic)
		}
	}
	if next == nil {
		return
	}
	if err := writeDeleted(s.deletedPath(), next); err != nil {
		s.opts.Logger.Warn("retention: deleted topics not forgotten", "err", err)
		return
	}
	s.mu.Lock()
	s.deleted = next
	s.mu.Unlock()
}
