package compat

import (
	"context"
	"slices"
	"testing"
	"time"

	rmqadmin "github.com/apache/rocketmq-client-go/v2/admin"

	"github.com/halfbackmq/halfback/broker"
	"github.com/halfbackmq/halfback/delay"
	"github.com/halfbackmq/halfback/internal/admin"
)

// TestOfficialAdminCreateTopicOptions: every field of the official admin
// client's CreateTopic (UPDATE_AND_CREATE_TOPIC) reaches the broker's topic
// config (queue counts that differ, permission, order, system flag), a
// second CreateTopic of the name updates it, FetchPublishMessageQueues
// lists the write queues, and a system topic is left as it was (the
// client ignores the response code, so the broker's config is checked).
// DeleteTopic given only the topic finds the broker through the route and
// the name servers through its resolver, as mqadmin's deleteTopic does.
func TestOfficialAdminCreateTopicOptions(t *testing.T) {
	c := startCluster(t)
	ra, err := rmqadmin.NewAdmin(rmqadmin.WithResolver(c.resolver()))
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	ctx := context.Background()
	ac, err := admin.Dial(ctx, c.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	create := func(topic string, opts ...rmqadmin.OptionCreate) {
		t.Helper()
		opts = append([]rmqadmin.OptionCreate{rmqadmin.WithTopicCreate(topic), rmqadmin.WithBrokerAddrCreate(c.b.Addr())}, opts...)
		if err := ra.CreateTopic(ctx, opts...); err != nil {
			t.Fatal(err)
		}
	}

	topic := uniq("admopt")
	create(topic, rmqadmin.WithReadQueueNums(4), rmqadmin.WithWriteQueueNums(2), rmqadmin.WithPerm(broker.PermWrite),
		rmqadmin.WithOrder(true), rmqadmin.WithTopicSysFlag(1))
	want := admin.Topic{Name: topic, ReadQueueNums: 4, WriteQueueNums: 2, Perm: broker.PermWrite, TopicSysFlag: 1, Order: true}
	if got, err := ac.GetTopic(ctx, topic); err != nil || got != want {
		t.Fatalf("created topic %+v, %v; want %+v", got, err, want)
	}
	waitFor(t, 30*time.Second, "the topic in the name server's list", func() bool {
		l, err := ra.FetchAllTopicList(ctx)
		return err == nil && slices.Contains(l.TopicList, topic)
	})
	if mqs, err := ra.FetchPublishMessageQueues(ctx, topic); err != nil || len(mqs) != 2 {
		t.Fatalf("FetchPublishMessageQueues: %d queues, %v; want the 2 write queues", len(mqs), err)
	}

	create(topic, rmqadmin.WithReadQueueNums(3), rmqadmin.WithWriteQueueNums(3))
	want = admin.Topic{Name: topic, ReadQueueNums: 3, WriteQueueNums: 3, Perm: broker.PermRW}
	if got, err := ac.GetTopic(ctx, topic); err != nil || got != want {
		t.Fatalf("updated topic %+v, %v; want %+v", got, err, want)
	}

	before, err := ac.GetTopic(ctx, delay.ScheduleTopic)
	if err != nil {
		t.Fatal(err)
	}
	create(delay.ScheduleTopic, rmqadmin.WithReadQueueNums(1), rmqadmin.WithWriteQueueNums(1))
	if after, err := ac.GetTopic(ctx, delay.ScheduleTopic); err != nil || after != before {
		t.Fatalf("system topic after CreateTopic: %+v, %v; want it unchanged, %+v", after, err, before)
	}

	if err := ra.DeleteTopic(ctx, rmqadmin.WithTopicDelete(topic)); err != nil {
		t.Fatal(err)
	}
	if got, err := ac.GetTopic(ctx, topic); err == nil {
		t.Fatalf("the deleted topic is still on the broker: %+v", got)
	}
	waitFor(t, 30*time.Second, "the deleted topic gone from the name server's list", func() bool {
		l, err := ra.FetchAllTopicList(ctx)
		return err == nil && !slices.Contains(l.TopicList, topic)
	})
}
