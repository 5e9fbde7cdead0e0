// Package ports is the projector's transport in: the Kafka consumer that reads the event
// topic as a member of the projector's group and hands each partition's batch to the
// application. Offsets live in PostgreSQL, with the rows (never committed to Kafka).
package ports

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/services/projector/app"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ConsumerConfig is how the consumer joins its group.
type ConsumerConfig struct {
	Kafka config.Kafka
	// Group is the consumer group; replicas share partitions through it.
	Group string
	// InstanceID is the static group membership id ("" for dynamic membership).
	InstanceID string
	// ResetOnTopicChange projects a recreated topic from its start instead of stopping.
	ResetOnTopicChange bool
}

// Consumer feeds the application from the topic.
type Consumer struct {
	cfg   ConsumerConfig
	app   *app.Application
	log   *slog.Logger
	ready atomic.Bool
}

// NewConsumer is a consumer for application; Run starts it.
func NewConsumer(cfg ConsumerConfig, application *app.Application, log *slog.Logger) *Consumer {
	return &Consumer{cfg: cfg, app: application, log: log}
}

// Ready reports whether the consumer has joined its group and is consuming.
func (c *Consumer) Ready() bool { return c.ready.Load() }

// Run consumes until ctx ends.
func (c *Consumer) Run(ctx context.Context) error {
	topic := c.cfg.Kafka.Topic
	var static []kgo.Opt
	if c.cfg.InstanceID != "" {
		static = append(static, kgo.InstanceID("projector@"+c.cfg.InstanceID))
	}
	cl, err := kafka.NewClient(c.cfg.Kafka, slices.Concat(static, kafka.BatchedFetches(), []kgo.Opt{
		kgo.ConsumerGroup(c.cfg.Group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), // offsets live in PostgreSQL, with the rows
		kgo.AdjustFetchOffsetsFn(c.storedOffsets),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { c.ready.Store(true) }),
		// Transaction markers are delivered too, so the stored offset moves past them and
		// "caught up" means next_offset = the partition's end, as for any consumer.
		kgo.KeepControlRecords(),
	})...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := kafka.WaitReady(ctx, cl, c.log); err != nil {
		return err
	}
	if err := kafka.EnsureTopic(ctx, cl, c.cfg.Kafka); err != nil {
		return err
	}
	topicID, err := kafka.TopicID(ctx, cl, topic)
	if err != nil {
		return err
	}
	if err := c.app.CheckTopic(ctx, topic, topicID, c.cfg.ResetOnTopicChange); err != nil {
		return err
	}
	c.log.Info("projector consuming", "topic", topic, "group", c.cfg.Group)
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			c.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		var applyErr error
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if applyErr != nil || len(fp.Records) == 0 {
				return
			}
			applyErr = c.app.ApplyBatch(ctx, topicID, fp.Partition, records(fp.Records))
		})
		kafka.ObserveLag(c.cfg.Group, fetches)
		if applyErr != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The transaction rolled back; nothing of the batch was written. Rewind the
			// in-memory fetch positions to what PostgreSQL says and try again.
			// PostgreSQL may be restarting: keep trying (with backoff) rather than exit, so a
			// database restart does not take every projector down with it.
			c.log.Error("apply batch failed; retrying from stored offsets", "err", applyErr)
			for wait := time.Second; ; wait = min(2*wait, 10*time.Second) {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
				err := c.rewind(ctx, cl)
				if err == nil {
					break
				}
				c.log.Error("reading stored offsets failed; retrying", "err", err, "retry_in", wait)
			}
		}
	}
}

// records are the application's view of a partition's fetched records.
func records(recs []*kgo.Record) []app.Record {
	out := make([]app.Record, len(recs))
	for i, rec := range recs {
		r := app.Record{Offset: rec.Offset, Control: rec.Attrs.IsControl(), Value: rec.Value}
		if !r.Control {
			r.Event, r.Err = kafka.Event(rec)
			r.Headers = make(map[string]string, len(rec.Headers))
			for _, h := range rec.Headers {
				r.Headers[h.Key] = string(h.Value)
			}
		}
		out[i] = r
	}
	return out
}

// storedOffsets replaces the offsets Kafka remembers for the group with those stored in
// PostgreSQL, which are exactly where the committed rows end.
func (c *Consumer) storedOffsets(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	next, err := c.app.StoredOffsets(ctx)
	if err != nil {
		return nil, err
	}
	for topic, parts := range assigned {
		for part := range parts {
			if o, ok := next[part]; ok && topic == c.cfg.Kafka.Topic {
				parts[part] = kgo.NewOffset().At(o)
			} else {
				parts[part] = kgo.NewOffset().AtStart()
			}
		}
	}
	return assigned, nil
}

func (c *Consumer) rewind(ctx context.Context, cl *kgo.Client) error {
	next, err := c.app.StoredOffsets(ctx)
	if err != nil {
		return err
	}
	set := map[string]map[int32]kgo.EpochOffset{c.cfg.Kafka.Topic: {}}
	for part, o := range next {
		set[c.cfg.Kafka.Topic][part] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	cl.SetOffsets(set)
	return nil
}
