package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/halfbackmq/halfback/broker/remoting"
	"github.com/halfbackmq/halfback/internal/fsutil"
	"github.com/halfbackmq/halfback/message"
)

// Subscription groups: each consumer group's settings, RocketMQ's
// SubscriptionGroupManager. A group gets its settings on its first
// heartbeat or pull (unless DisableAutoCreateSubscriptionGroup), or from
// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (mqadmin updateSubGroup, `halfback
// group update`); GET_ALL_SUBSCRIPTIONGROUP_CONFIG lists them and
// DELETE_SUBSCRIPTIONGROUP removes them (admin.go).

// SubscriptionGroupConfig is one consumer group's settings, in RocketMQ's
// SubscriptionGroupConfig JSON shape.
type SubscriptionGroupConfig struct {
	GroupName string `json:"groupName"`
	// ConsumeEnable false refuses the group's pulls (NO_PERMISSION): its
	// consumers stay members and pull again until it is true again.
	ConsumeEnable bool `json:"consumeEnable"`
	// ConsumeFromMinEnable is kept for RocketMQ's tools; nothing reads it
	// (as in RocketMQ).
	ConsumeFromMinEnable bool `json:"consumeFromMinEnable"`
	// ConsumeBroadcastEnable false refuses the pulls of the group's
	// broadcasting consumers.
	ConsumeBroadcastEnable bool `json:"consumeBroadcastEnable"`
	// RetryQueueNums is the queue count of the group's retry topic when
	// the broker creates it; send-backs spread over its write queues.
	RetryQueueNums int `json:"retryQueueNums"`
	// RetryMaxTimes is how often a message is retried before it goes to
	// the dead-letter queue, for a send-back that does not say (the
	// official clients send their own maxReconsumeTimes, which wins).
	RetryMaxTimes int `json:"retryMaxTimes"`
	// BrokerID and WhichBrokerWhenConsumeSlowly choose among master and
	// slaves in RocketMQ; halfback has no slaves and keeps them for the
	// tools.
	BrokerID                     int64 `json:"brokerId"`
	WhichBrokerWhenConsumeSlowly int64 `json:"whichBrokerWhenConsumeSlowly"`
	// NotifyConsumerIdsChangedEnable false stops
	// NOTIFY_CONSUMER_IDS_CHANGED for the group: its consumers rebalance
	// on their own timer only.
	NotifyConsumerIdsChangedEnable bool `json:"notifyConsumerIdsChangedEnable"`
}

// toolsConsumerGroup is the group administrative pulls use (`halfback dlq
// list`, mqadmin's tools; RocketMQ's MixAll.TOOLS_CONSUMER_GROUP). It gets
// its settings even with auto-creation off, as RocketMQ's
// SubscriptionGroupManager always has it.
const toolsConsumerGroup = "TOOLS_CONSUMER"

// maxRetryQueueNums bounds RetryQueueNums as a topic's queue count is.
const maxRetryQueueNums = 1024

// defaultSubscriptionGroup is a group's settings before anyone changes
// them: RocketMQ's defaults, with the broker's MaxReconsumeTimes.
func defaultSubscriptionGroup(name string, retryMaxTimes int) SubscriptionGroupConfig {
	return SubscriptionGroupConfig{GroupName: name, ConsumeEnable: true, ConsumeFromMinEnable: true,
		ConsumeBroadcastEnable: true, RetryQueueNums: 1, RetryMaxTimes: retryMaxTimes,
		WhichBrokerWhenConsumeSlowly: 1, NotifyConsumerIdsChangedEnable: true}
}

// validate checks the settings an update may set.
func (c SubscriptionGroupConfig) validate() error {
	if err := message.ValidateGroup(c.GroupName); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	if c.RetryQueueNums < 1 || c.RetryQueueNums > maxRetryQueueNums {
		return fmt.Errorf("%w: group %s: retryQueueNums %d (want 1..%d)", ErrInvalidOptions, c.GroupName, c.RetryQueueNums, maxRetryQueueNums)
	}
	if c.RetryMaxTimes < 0 {
		return fmt.Errorf("%w: group %s: retryMaxTimes %d is negative", ErrInvalidOptions, c.GroupName, c.RetryMaxTimes)
	}
	return nil
}

// dataVersion is RocketMQ's DataVersion: when the table last changed and
// how often it has.
type dataVersion struct {
	Timestamp int64 `json:"timestamp"`
	Counter   int64 `json:"counter"`
}

// subGroupTable is the broker's subscription groups, persisted as JSON in
// <dataDir>/config/subscriptionGroups.json (rewritten atomically on every
// change).
type subGroupTable struct {
	path          string
	autoCreate    bool
	retryMaxTimes int

	mu      sync.RWMutex
	groups  map[string]SubscriptionGroupConfig
	version dataVersion
	// fresh: there was no file (a new broker, or one from before the
	// table): Open seeds it with the groups the broker knows (seed).
	fresh bool
	// unseeded, if set, is why a fresh table could not be seeded yet;
	// saveLocked returns it, so that no file is written before the seeding
	// (changes are then served from memory, or refused, as after any
	// failed write).
	unseeded error
}

// subGroupFile is the file's shape (and GET_ALL_SUBSCRIPTIONGROUP_CONFIG's
// answer, RocketMQ's SubscriptionGroupWrapper).
type subGroupFile struct {
	SubscriptionGroupTable map[string]SubscriptionGroupConfig `json:"subscriptionGroupTable"`
	DataVersion            dataVersion                        `json:"dataVersion"`
}

// openSubGroupTable loads the subscription groups of dataDir. A group the
// file holds that fails validate is an error naming it: the broker would
// otherwise apply settings no update could have made.
func openSubGroupTable(dataDir string, autoCreate bool, retryMaxTimes int) (*subGroupTable, error) {
	t := &subGroupTable{path: filepath.Join(dataDir, "config", "subscriptionGroups.json"), autoCreate: autoCreate,
		retryMaxTimes: retryMaxTimes, groups: make(map[string]SubscriptionGroupConfig)}
	if err := fsutil.MkdirAllSync(filepath.Dir(t.path)); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(t.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		t.fresh = true
		return t, nil
	case err != nil:
		return nil, err
	}
	var f subGroupFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("broker: subscription groups %s: %w", t.path, err)
	}
	for name, c := range f.SubscriptionGroupTable {
		if c.GroupName != name {
			return nil, fmt.Errorf("broker: subscription groups %s: entry %q names group %q", t.path, name, c.GroupName)
		}
		if err := c.validate(); err != nil {
			return nil, fmt.Errorf("broker: subscription groups %s: %w", t.path, err)
		}
		t.groups[name] = c
	}
	t.version = f.DataVersion
	return t, nil
}

// get returns a group's settings.
func (t *subGroupTable) get(name string) (SubscriptionGroupConfig, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	c, ok := t.groups[name]
	return c, ok
}

// find returns a group's settings, creating the defaults when
// auto-creation is on (SubscriptionGroupManager.findSubscriptionGroupConfig).
// ok is false for a group that has none and may not get them.
func (t *subGroupTable) find(name string) (c SubscriptionGroupConfig, ok bool, err error) {
	if c, ok := t.get(name); ok {
		return c, true, nil
	}
	if (!t.autoCreate && name != toolsConsumerGroup) || message.ValidateGroup(name) != nil {
		return SubscriptionGroupConfig{}, false, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.groups[name]; ok {
		return c, true, nil
	}
	c = defaultSubscriptionGroup(name, t.retryMaxTimes)
	if err := t.setLocked(c); err != nil {
		// Served from memory until the next change is written.
		return c, true, err
	}
	return c, true, nil
}

// findAll is find for each of names, in one write of the file for those
// it creates (a heartbeat names every group of its client). It returns the
// settings of those that have them.
func (t *subGroupTable) findAll(names []string) ([]SubscriptionGroupConfig, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []SubscriptionGroupConfig
	added := false
	for _, name := range names {
		c, ok := t.groups[name]
		if !ok {
			if (!t.autoCreate && name != toolsConsumerGroup) || message.ValidateGroup(name) != nil {
				continue
			}
			c = defaultSubscriptionGroup(name, t.retryMaxTimes)
			t.groups[name] = c
			added = true
		}
		out = append(out, c)
	}
	if !added {
		return out, nil
	}
	t.bumpLocked()
	// Served from memory until the next change is written, as find's.
	return out, t.saveLocked()
}

// seed gives the default settings to each of names that has none, in
// one write: a data directory from before the table keeps its groups
// consuming when auto-creation is then turned off. The file is written
// even with no group to add, so that seeding happens once: a group
// refused settings later (auto-creation off) that commits offsets does
// not get them at the next restart.
func (t *subGroupTable) seed(names []string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	added := false
	for _, name := range names {
		if _, ok := t.groups[name]; !ok && message.ValidateGroup(name) == nil {
			t.groups[name] = defaultSubscriptionGroup(name, t.retryMaxTimes)
			added = true
		}
	}
	if added {
		t.bumpLocked()
	}
	return t.saveLocked()
}

// knownGroups are the consumer groups a broker's data names: those with
// committed offsets or a retry topic.
func (b *Broker) knownGroups() []string {
	var out []string
	for g := range b.offsetTable().copyWhere(func(k offsetKey) (string, bool) { return k.group, true }) {
		out = append(out, g)
	}
	for _, tc := range b.topics.all() {
		if g, ok := strings.CutPrefix(tc.TopicName, RetryGroupTopicPrefix); ok {
			out = append(out, g)
		}
	}
	return out
}

// put creates or replaces a group's settings. If they cannot be written,
// the table stays as it was: the caller is told the change failed.
func (t *subGroupTable) put(c SubscriptionGroupConfig) error {
	if err := c.validate(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.groups[c.GroupName]
	ver := t.version
	if err := t.setLocked(c); err != nil {
		t.restoreLocked(c.GroupName, old, had, ver)
		return err
	}
	return nil
}

// restoreLocked undoes a change of name's settings that was not written.
func (t *subGroupTable) restoreLocked(name string, old SubscriptionGroupConfig, had bool, ver dataVersion) {
	if had {
		t.groups[name] = old
	} else {
		delete(t.groups, name)
	}
	t.version = ver
}

// remove deletes a group's settings, reporting whether it had any. If
// the table cannot be written, the settings stay.
func (t *subGroupTable) remove(name string) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, ok := t.groups[name]
	if !ok {
		return false, nil
	}
	ver := t.version
	delete(t.groups, name)
	t.bumpLocked()
	if err := t.saveLocked(); err != nil {
		t.restoreLocked(name, old, true, ver)
		return false, err
	}
	return true, nil
}

// encode is the table as GET_ALL_SUBSCRIPTIONGROUP_CONFIG answers it.
func (t *subGroupTable) encode() ([]byte, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return json.Marshal(subGroupFile{SubscriptionGroupTable: t.groups, DataVersion: t.version})
}

func (t *subGroupTable) setLocked(c SubscriptionGroupConfig) error {
	t.groups[c.GroupName] = c
	t.bumpLocked()
	return t.saveLocked()
}

func (t *subGroupTable) bumpLocked() {
	t.version.Timestamp = time.Now().UnixMilli()
	t.version.Counter++
}

func (t *subGroupTable) saveLocked() error {
	if t.unseeded != nil {
		return t.unseeded
	}
	b, err := json.MarshalIndent(subGroupFile{SubscriptionGroupTable: t.groups, DataVersion: t.version}, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(t.path, b)
}

// registerSubGroups handles UPDATE_AND_CREATE_SUBSCRIPTIONGROUP and
// GET_ALL_SUBSCRIPTIONGROUP_CONFIG.
func (b *Broker) registerSubGroups(mux *remoting.Mux) {
	mux.HandleFunc(remoting.ReqUpdateAndCreateSubscriptionGroup, b.handleUpdateSubGroup)
	mux.HandleFunc(remoting.ReqGetAllSubscriptionGroupConfig, b.handleGetAllSubGroups)
}

// handleUpdateSubGroup creates or replaces a group's settings from the
// body, a SubscriptionGroupConfig; fields it leaves out take RocketMQ's
// defaults, as a Java object the body was not written from would.
func (b *Broker) handleUpdateSubGroup(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	c := defaultSubscriptionGroup("", b.opts.MaxReconsumeTimes)
	if err := json.Unmarshal(req.Body, &c); err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, "bad subscription group config: "+err.Error())
	}
	if err := b.subGroups.put(c); err != nil {
		code := remoting.RespSystemError
		if errors.Is(err, ErrInvalidOptions) {
			code = remoting.RespInvalidParameter
		}
		return remoting.NewResponse(req, code, err.Error())
	}
	b.opts.Logger.Info("subscription group updated", "group", c.GroupName, "consumeEnable", c.ConsumeEnable,
		"consumeBroadcastEnable", c.ConsumeBroadcastEnable, "retryMaxTimes", c.RetryMaxTimes, "retryQueueNums", c.RetryQueueNums)
	return remoting.NewResponse(req, remoting.RespSuccess, "")
}

func (b *Broker) handleGetAllSubGroups(_ context.Context, _ *remoting.Conn, req *remoting.Command) *remoting.Command {
	body, err := b.subGroups.encode()
	if err != nil {
		return remoting.NewResponse(req, remoting.RespSystemError, err.Error())
	}
	resp := remoting.NewResponse(req, remoting.RespSuccess, "")
	resp.Body = body
	return resp
}

// pullGroupRefusal is why a group's pull is refused by its settings, or
// nil: it has none and may not get them (SUBSCRIPTION_GROUP_NOT_EXIST),
// consumption is off for it, or it consumes by broadcast where that is
// off (NO_PERMISSION). As PullMessageProcessor.
func (b *Broker) pullGroupRefusal(req *remoting.Command, group string) *remoting.Command {
	c, ok, err := b.subGroups.find(group)
	if err != nil {
		b.opts.Logger.Warn("subscription groups file not written", "group", group, "err", err)
	}
	switch {
	case !ok:
		return remoting.NewResponse(req, remoting.RespSubscriptionGroupNotExist,
			"subscription group ["+group+"] does not exist, create it first (broker.autoCreateSubscriptionGroup is off)")
	case !c.ConsumeEnable:
		return remoting.NewResponse(req, remoting.RespNoPermission, "subscription group no permission, "+group)
	case !c.ConsumeBroadcastEnable:
		if v, online := b.consumerGroupInfo(group); online && v.MessageModel == "BROADCASTING" {
			return remoting.NewResponse(req, remoting.RespNoPermission,
				"the consumer group["+group+"] can not consume by broadcast way")
		}
	}
	return nil
}

// retryMaxTimes is the retry limit of a send-back or retry send that does
// not carry one: the group's RetryMaxTimes, else MaxReconsumeTimes.
func (b *Broker) retryMaxTimes(group string) int {
	if c, ok := b.subGroups.get(group); ok {
		return c.RetryMaxTimes
	}
	return b.opts.MaxReconsumeTimes
}

// retryQueueNums is the queue count a group's retry topic is created with.
func (b *Broker) retryQueueNums(group string) int {
	if c, ok := b.subGroups.get(group); ok {
		return c.RetryQueueNums
	}
	return 1
}

// notifyEnabled drops the notices of groups whose settings turn
// NOTIFY_CONSUMER_IDS_CHANGED off.
func (b *Broker) notifyEnabled(notices []notice) []notice {
	out := notices[:0]
	for _, n := range notices {
		if c, ok := b.subGroups.get(n.group); !ok || c.NotifyConsumerIdsChangedEnable {
			out = append(out, n)
		}
	}
	return out
}
