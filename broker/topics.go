package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/fsutil"
	"github.com/halfbackmq/halfback/message"
)

// Topic permissions, RocketMQ's PermName bits.
const (
	PermInherit = 1
	PermWrite   = 2
	PermRead    = 4
	PermRW      = PermRead | PermWrite
)

// TopicConfig is one topic, in RocketMQ's TopicConfig JSON shape.
type TopicConfig struct {
	TopicName      string `json:"topicName"`
	ReadQueueNums  int    `json:"readQueueNums"`
	WriteQueueNums int    `json:"writeQueueNums"`
	Perm           int    `json:"perm"`
	TopicSysFlag   int    `json:"topicSysFlag"`
	Order          bool   `json:"order"`
}

// topicTable is the broker's topics, persisted as JSON in
// <dataDir>/config/topics.json (rewritten atomically on every change).
type topicTable struct {
	path       string
	queues     int
	autoCreate bool

	mu     sync.RWMutex
	topics map[string]TopicConfig
}

// systemTopics are always present: the delay topics and the cluster's
// reply topic (reply.go).
func systemTopics(levels int, cluster string) []TopicConfig {
	return []TopicConfig{
		{TopicName: delay.ScheduleTopic, ReadQueueNums: levels, WriteQueueNums: levels, Perm: PermRW},
		{TopicName: delay.TimerTopic, ReadQueueNums: 1, WriteQueueNums: 1, Perm: PermRW},
		{TopicName: ReplyTopic(cluster), ReadQueueNums: 1, WriteQueueNums: 1, Perm: PermRW},
	}
}

// openTopicTable loads the topic table of dataDir and adds the broker's
// own topics. A system topic found in the file that is not one of those
// (administration created any topic before it refused system topics) is
// dropped and logged: it could expose uncommitted half messages.
func openTopicTable(dataDir string, queues int, autoCreate bool, system []TopicConfig, log *slog.Logger) (*topicTable, error) {
	t := &topicTable{path: filepath.Join(dataDir, "config", "topics.json"), queues: queues, autoCreate: autoCreate,
		topics: make(map[string]TopicConfig)}
	if err := fsutil.MkdirAllSync(filepath.Dir(t.path)); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(t.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		var list []TopicConfig
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("broker: topic table %s: %w", t.path, err)
		}
		own := map[string]bool{}
		for _, tc := range system {
			own[tc.TopicName] = true
		}
		for _, tc := range list {
			if isSystemTopic(tc.TopicName) && !own[tc.TopicName] {
				log.Warn("broker: dropping a system topic from the topic table; administration may not create it", "topic", tc.TopicName)
				continue
			}
			t.topics[tc.TopicName] = tc
		}
	}
	for _, tc := range system {
		if _, ok := t.topics[tc.TopicName]; !ok {
			t.topics[tc.TopicName] = tc
		}
	}
	return t, nil
}

// get returns a topic's config.
func (t *topicTable) get(name string) (TopicConfig, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	tc, ok := t.topics[name]
	return tc, ok
}

// getOrCreate returns a topic's config, creating it with the default queue
// count when auto-creation is on.
func (t *topicTable) getOrCreate(name string) (TopicConfig, error) {
	if tc, ok := t.get(name); ok {
		return tc, nil
	}
	if err := message.ValidateTopic(name); err != nil {
		return TopicConfig{}, err
	}
	if !t.autoCreate {
		return TopicConfig{}, fmt.Errorf("%w: %s", ErrTopicNotExist, name)
	}
	tc := TopicConfig{TopicName: name, ReadQueueNums: t.queues, WriteQueueNums: t.queues, Perm: PermRW}
	return tc, t.put(tc, false)
}

// put creates or updates a topic (replace: overwrite an existing one).
// If the table cannot be written, it stays as it was: a topic is served
// only once its file has it, so that no send is acknowledged to a queue a
// restart would not find.
func (t *topicTable) put(tc TopicConfig, replace bool) error {
	if err := tc.validate(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.topics[tc.TopicName]
	if had && !replace {
		return nil
	}
	t.topics[tc.TopicName] = tc
	if err := t.saveLocked(); err != nil {
		t.restoreLocked(tc.TopicName, old, had)
		return err
	}
	return nil
}

// restoreLocked undoes a change of name's config that was not written.
func (t *topicTable) restoreLocked(name string, old TopicConfig, had bool) {
	if had {
		t.topics[name] = old
	} else {
		delete(t.topics, name)
	}
}

// create adds each of tcs that does not exist yet, in one write of the
// file (a heartbeat names every group of its client, each with a retry
// topic). Nothing is added if one of them is invalid, or if the file
// cannot be written.
func (t *topicTable) create(tcs []TopicConfig) error {
	for _, tc := range tcs {
		if err := tc.validate(); err != nil {
			return err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var added []string
	for _, tc := range tcs {
		if _, ok := t.topics[tc.TopicName]; !ok {
			t.topics[tc.TopicName] = tc
			added = append(added, tc.TopicName)
		}
	}
	if len(added) == 0 {
		return nil
	}
	if err := t.saveLocked(); err != nil { // as put: not served unwritten
		for _, name := range added {
			delete(t.topics, name)
		}
		return err
	}
	return nil
}

func (tc TopicConfig) validate() error {
	if err := message.ValidateTopic(tc.TopicName); err != nil {
		return err
	}
	if tc.ReadQueueNums < 1 || tc.WriteQueueNums < 1 || tc.ReadQueueNums > 1024 || tc.WriteQueueNums > 1024 {
		return fmt.Errorf("%w: topic %s: queue counts %d/%d (want 1..1024)", ErrInvalidOptions, tc.TopicName, tc.ReadQueueNums, tc.WriteQueueNums)
	}
	if tc.Perm < 0 || tc.Perm > PermRead|PermWrite|PermInherit { // PermName.isValid
		return fmt.Errorf("%w: topic %s: topicPermission value %d is invalid (want 0..7)", ErrInvalidOptions, tc.TopicName, tc.Perm)
	}
	return nil
}

// remove deletes a topic's config (handleDeleteTopic deletes the rest).
// If the table cannot be written, the topic stays, as in the file.
func (t *topicTable) remove(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, ok := t.topics[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrTopicNotExist, name)
	}
	delete(t.topics, name)
	if err := t.saveLocked(); err != nil {
		t.restoreLocked(name, old, true)
		return err
	}
	return nil
}

// all returns every topic, sorted by name.
func (t *topicTable) all() []TopicConfig {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]TopicConfig, 0, len(t.topics))
	for _, tc := range t.topics {
		out = append(out, tc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TopicName < out[j].TopicName })
	return out
}

func (t *topicTable) saveLocked() error {
	list := make([]TopicConfig, 0, len(t.topics))
	for _, tc := range t.topics {
		list = append(list, tc)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].TopicName < list[j].TopicName })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(t.path, b)
}

func (t *topicTable) close() error { return nil }

// registerTopics handles topic administration.
func (b *Broker) registerTopics(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqUpdateAndCreateTopic, b.handleCreateTopic)
	mux.HandleFunc(remoting.ReqDeleteTopicInBroker, b.handleDeleteTopic)
	mux.HandleFunc(remoting.ReqGetAllTopicConfig, b.handleGetAllTopicConfig)
}

// lockTopicAdmin takes topicAdmin and returns its unlock.
func (b *Broker) lockTopicAdmin() (unlock func()) {
	if !b.topicAdmin.TryLock() {
		if b.topicAdminWaits != nil {
			b.topicAdminWaits()
		}
		b.topicAdmin.Lock()
	}
	return b.topicAdmin.Unlock
}

// topicForSend returns the config of the topic a message is sent to,
// creating it if auto-creation is on (getOrCreate). Only a creation
// takes topicAdmin (a send to a topic that exists takes no lock), so
// that a creation on first use is not removed by a deletion it raced:
// it comes before the deletion starts, or after it ends.
func (b *Broker) topicForSend(name string) (TopicConfig, error) {
	if tc, ok := b.topics.get(name); ok {
		return tc, nil
	}
	if b.topics.autoCreate { // else getOrCreate refuses: nothing to lock
		defer b.lockTopicAdmin()()
	}
	return b.topics.getOrCreate(name)
}

// isSystemTopic reports a topic the broker keeps for itself (RocketMQ's
// TopicValidator.isSystemTopic): the ones no producer may send to, and any
// rmq_sys_ topic. Administration may not create, change or delete them:
// creating the half-message topic, say, would let anyone pull uncommitted
// transactional messages.
func isSystemTopic(topic string) bool {
	return sendForbiddenTopics[topic] || strings.HasPrefix(topic, "rmq_sys_")
}

// brokerOwnsTopic reports a topic administration may not create, update or
// delete: a system topic, or the cluster's reply topic, which RocketMQ's
// TopicConfigManager also registers as a system topic.
func (b *Broker) brokerOwnsTopic(topic string) bool {
	return isSystemTopic(topic) || topic == ReplyTopic(b.opts.ClusterName)
}

// systemTopicRefused is AdminBrokerProcessor's answer to an administration
// request for a system topic.
func systemTopicRefused(req *remoting.Command, topic string) *remoting.Command {
	return remoting.NewResponse(req, remoting.RespSystemError, "The topic["+topic+"] is conflict with system topic.")
}

func (b *Broker) handleCreateTopic(ctx context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	if topic := req.Ext("topic"); b.brokerOwnsTopic(topic) {
		return systemTopicRefused(req, topic)
	}
	tc := TopicConfig{TopicName: req.Ext("topic"), ReadQueueNums: b.opts.DefaultQueueNums, WriteQueueNums: b.opts.DefaultQueueNums, Perm: PermRW}
	for key, dst := range map[string]*int{"readQueueNums": &tc.ReadQueueNums, "writeQueueNums": &tc.WriteQueueNums, "perm": &tc.Perm, "topicSysFlag": &tc.TopicSysFlag} {
		if v := req.Ext(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return remoting.NewResponse(req, remoting.RespSystemError, fmt.Sprintf("%s %q is not a number", key, v))
			}
			*dst = n
		}
	}
	tc.Order = req.Ext("order") == "true"
	unlock := b.lockTopicAdmin() // see handleDeleteTopic
	err := b.topics.put(tc, true)
	unlock()
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	b.opts.Logger.Info("topic created", "topic", tc.TopicName, "queues", tc.WriteQueueNums)
	b.registered(ctx)
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

// handleDeleteTopic deletes a topic as AdminBrokerProcessor.deleteTopic
// does: its config, its consume queues (the store keeps its records until
// retention removes them) and every group's committed offsets on it. A
// topic created again under the name starts empty, at queue offset 0,
// and no group resumes from an offset of the old one. Pulls held on the
// topic are answered at once. A topic not in the table is answered
// TOPIC_NOT_EXIST, but the queues and offsets it left (earlier versions
// kept them) are deleted all the same. The broker's own topics are
// refused.
//
// The store's cut comes first and the config's removal last, so that no
// acknowledged send is lost: a send that reaches the store before the cut
// found the old topic and is deleted with it; one that reaches it after
// the cut found the config still there (or created it anew) and is the
// first message of the topic created again, at queue offset 0, delivered
// once the topic exists again (a producer's next send creates it when
// auto-creation is on). Removing the config first would let a send in
// between create the topic anew, be acknowledged, and land below the cut,
// where no queue ever gets it. If the config cannot be removed, the topic
// stays, empty.
//
// The deletion holds the topic-administration lock throughout, as does
// a creation or update (handleCreateTopic) and a creation on first use
// (topicForSend, ensureGroupTopic): a topic created while the deletion
// ran would otherwise be removed by it, after its creation was answered
// with success. A creation comes either before the deletion starts, and
// is deleted, as the admin asked last, or after it ends, and stands.
func (b *Broker) handleDeleteTopic(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	topic := req.Ext("topic")
	if b.brokerOwnsTopic(topic) {
		return systemTopicRefused(req, topic)
	}
	defer b.lockTopicAdmin()()
	if message.ValidateTopic(topic) == nil { // no queue or offset has an invalid name
		if err := b.deleteTopicData(topic); err != nil {
			b.opts.Logger.Error("topic deletion failed", "topic", topic, "err", err)
			return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
		}
	}
	if b.midDeleteTopic != nil {
		b.midDeleteTopic(topic)
	}
	removeErr := b.topics.remove(topic)
	b.pulls.wakeTopic(topic) // they find the topic gone
	switch {
	case errors.Is(removeErr, ErrTopicNotExist):
		return remoting.NewResponse(req, remoting.RespTopicNotExist, removeErr.Error())
	case removeErr != nil:
		b.opts.Logger.Error("topic deletion failed", "topic", topic, "err", removeErr)
		return remoting.NewResponse(req, remoting.RespSystemError, removeErr.Error())
	}
	b.metrics.forgetTopic(topic)
	b.topicDeleted(topic)
	b.opts.Logger.Info("topic deleted", "topic", topic)
	b.topicsChanged()
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

// deleteTopicData deletes a topic's consume queues and then every group's
// offsets on it (persisted at once): a commit checked against the old
// queues is then either removed with the offsets or refused (see
// commitOffset).
func (b *Broker) deleteTopicData(topic string) error {
	if err := b.store.DeleteTopic(topic); err != nil {
		return fmt.Errorf("delete the consume queues of %s: %w", topic, err)
	}
	if err := b.offsetTable().removeTopic(topic); err != nil {
		return fmt.Errorf("delete the consumer offsets of %s: %w", topic, err)
	}
	return nil
}

// handleGetAllTopicConfig answers with {"topicConfigTable": {name: config}}.
func (b *Broker) handleGetAllTopicConfig(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	table := map[string]TopicConfig{}
	for _, tc := range b.topics.all() {
		table[tc.TopicName] = tc
	}
	body, err := json.Marshal(map[string]any{"topicConfigTable": table})
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}
