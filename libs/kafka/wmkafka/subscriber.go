package wmkafka

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Start says where a consumer with no committed offset begins.
type Start int

const (
	// StartEarliest replays the whole retained log (the default).
	StartEarliest Start = iota
	// StartLatest sees only records appended after the consumer looked up the end of each
	// partition; records appended between Subscribe and that lookup are not seen.
	StartLatest
)

// DefaultNackResendSleep is the pause before a nacked message is delivered again.
const DefaultNackResendSleep = 100 * time.Millisecond

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// Brokers are the seed brokers.
	Brokers []string
	// ConsumerGroup shares partitions among subscribers of the same group and stores acked
	// offsets in Kafka, so a restarted subscriber resumes after the last ack. Empty means
	// no group: every subscription reads every partition from Start and nothing is stored.
	ConsumerGroup string
	// Start applies when there is no committed offset (always, without a group).
	Start Start
	// NackResendSleep is the pause before a nacked message comes again (default 100 ms).
	// The partition waits meanwhile: that is the price of keeping its order.
	NackResendSleep time.Duration
	// Unmarshaler turns records into messages; nil means DefaultMarshaler{}.
	Unmarshaler Marshaler
	// InitializePartitions and InitializeReplicationFactor are used by SubscribeInitialize
	// to create a missing topic; 0 means the broker default.
	InitializePartitions        int32
	InitializeReplicationFactor int16
	// Options are appended to the client options (after the consumer options set here).
	Options []kgo.Opt
	// Logger receives consumer errors; nil discards them.
	Logger *slog.Logger
}

// Subscriber is a Watermill message.Subscriber on franz-go.
//
// Each partition gets its own goroutine that hands out one message at a time and waits for
// its Ack or Nack before the next. That keeps per-key order (one key, one partition) while
// partitions proceed in parallel; the cost is that one slow or stuck message holds up the
// rest of its partition. Ack marks the record's offset for commit (committed every 5 s by
// franz-go's autocommit, and synchronously when partitions are revoked or the subscriber
// closes); Nack delivers the same record again after NackResendSleep. Only acked offsets
// are committed, so delivery is at-least-once: a message in flight when its partition moves
// to another group member, or when the process dies, is delivered again.
//
// A message's context ends when it is acked or nacked, when its partition is revoked or
// lost, and when the subscription ends; a handler still running then should stop, as its
// ack no longer counts. Under a Watermill router, handlers therefore run concurrently up to
// the number of partitions assigned, never two of one partition at once.
//
// Each Subscribe call opens its own franz-go client (one group member per subscription).
type Subscriber struct {
	cfg SubscriberConfig
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// NewSubscriber validates cfg; clients are created by Subscribe.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("wmkafka: no brokers configured")
	}
	if cfg.NackResendSleep <= 0 {
		cfg.NackResendSleep = DefaultNackResendSleep
	}
	if cfg.Unmarshaler == nil {
		cfg.Unmarshaler = DefaultMarshaler{}
	}
	if cfg.InitializePartitions == 0 {
		cfg.InitializePartitions = -1
	}
	if cfg.InitializeReplicationFactor == 0 {
		cfg.InitializeReplicationFactor = -1
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Subscriber{cfg: cfg, log: log, subs: map[*subscription]struct{}{}}, nil
}

// SubscribeInitialize creates topic if it does not exist (message.SubscribeInitializer).
func (s *Subscriber) SubscribeInitialize(topic string) error {
	cl, err := kafka.NewClient(config.Kafka{Brokers: s.cfg.Brokers})
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return kafka.EnsureTopic(ctx, cl, config.Kafka{
		Topic:             topic,
		Partitions:        s.cfg.InitializePartitions,
		ReplicationFactor: s.cfg.InitializeReplicationFactor,
	})
}

// Subscribe starts consuming topic. The returned channel is closed when ctx ends or the
// Subscriber is closed, after acked offsets are committed.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}

	sub := &subscription{
		topic:      topic,
		group:      s.cfg.ConsumerGroup != "",
		groupName:  s.cfg.ConsumerGroup,
		unmarshal:  s.cfg.Unmarshaler,
		nackSleep:  s.cfg.NackResendSleep,
		log:        s.log.With("topic", topic, "group", s.cfg.ConsumerGroup),
		out:        make(chan *message.Message),
		done:       make(chan struct{}),
		partitions: map[int32]*partitionConsumer{},
	}
	sub.ctx, sub.cancel = context.WithCancel(ctx)

	reset := kgo.NewOffset().AtStart()
	if s.cfg.Start == StartLatest {
		reset = kgo.NewOffset().AtEnd()
	}
	opts := []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(reset)}
	if sub.group {
		opts = append(opts,
			kgo.ConsumerGroup(s.cfg.ConsumerGroup),
			// Commit only what was acked, and never while records handed out before a
			// rebalance could still be marked: callbacks run between polls, never during.
			kgo.AutoCommitMarks(),
			kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsRevoked(sub.revoked),
			kgo.OnPartitionsLost(sub.lost),
		)
	}
	cl, err := kafka.NewClient(config.Kafka{Brokers: s.cfg.Brokers}, append(opts, s.cfg.Options...)...)
	if err != nil {
		sub.cancel()
		return nil, err
	}
	sub.cl = cl
	s.subs[sub] = struct{}{}

	go func() {
		sub.run()
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
	}()
	return sub.out, nil
}

// Close ends every subscription, commits acked offsets, leaves the groups and closes the
// message channels. Messages handed out and not yet acked are delivered again later.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	subs := make([]*subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()

	for _, sub := range subs {
		sub.cancel()
	}
	for _, sub := range subs {
		<-sub.done
	}
	return nil
}

// subscription is one Subscribe call: one client, one topic, one goroutine per partition.
type subscription struct {
	topic     string
	group     bool
	groupName string
	cl        *kgo.Client
	unmarshal Marshaler
	nackSleep time.Duration
	log       *slog.Logger

	ctx    context.Context // ends the subscription (Subscribe's ctx or Close)
	cancel context.CancelFunc
	out    chan *message.Message
	done   chan struct{}

	mu         sync.Mutex
	partitions map[int32]*partitionConsumer
	wg         sync.WaitGroup
}

// run polls until the subscription ends, then shuts everything down in order: partition
// goroutines first (so nothing is marked after), then the client, whose group leave runs
// revoked and so commits the final marks, then the channel.
func (sub *subscription) run() {
	defer close(sub.done)
	for {
		fetches := sub.cl.PollFetches(sub.ctx)
		if sub.ctx.Err() != nil || fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(_ string, partition int32, err error) {
			// franz-go retries (with backoff) failed fetches and group joins itself; the
			// errors are reported for visibility.
			sub.log.Warn("kafka consumer error", "partition", partition, "err", err)
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				sub.consumer(p.Partition).push(p.Records)
			}
		})
		if sub.group {
			kafka.ObserveLag(sub.groupName, fetches)
		}
		sub.cl.AllowRebalance()
	}
	sub.stop(nil)
	sub.cl.CloseAllowingRebalance()
	sub.wg.Wait()
	close(sub.out)
}

// consumer returns the partition's goroutine, starting it on the partition's first records.
// With BlockRebalanceOnPoll a revoke cannot run between the poll and this call, so a
// consumer is never started for a partition that was just taken away.
func (sub *subscription) consumer(partition int32) *partitionConsumer {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	pc, ok := sub.partitions[partition]
	if !ok {
		pc = &partitionConsumer{
			sub:       sub,
			partition: partition,
			quit:      make(chan struct{}),
			done:      make(chan struct{}),
			wake:      make(chan struct{}, 1),
		}
		sub.partitions[partition] = pc
		sub.wg.Add(1)
		go func() {
			defer sub.wg.Done()
			pc.run()
		}()
	}
	return pc
}

// stop ends the goroutines of the given partitions (all when nil) and waits for them. Their
// queued records are dropped: the partitions' next owner fetches them again from the last
// committed offset.
func (sub *subscription) stop(partitions []int32) {
	sub.mu.Lock()
	var stopping []*partitionConsumer
	if partitions == nil {
		for p, pc := range sub.partitions {
			stopping = append(stopping, pc)
			delete(sub.partitions, p)
		}
	} else {
		for _, p := range partitions {
			if pc, ok := sub.partitions[p]; ok {
				stopping = append(stopping, pc)
				delete(sub.partitions, p)
			}
		}
	}
	sub.mu.Unlock()
	for _, pc := range stopping {
		close(pc.quit)
	}
	for _, pc := range stopping {
		<-pc.done
		pc.unpause() // a pause would outlive the assignment and starve a later one
	}
}

// revoked runs (between polls) when partitions move to another member and when the client
// leaves the group: stop their goroutines, then commit everything acked so the next owner
// starts right after it.
func (sub *subscription) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	sub.stop(nonNil(revoked[sub.topic]))
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		sub.log.Warn("kafka commit on revoke failed; acked messages may be delivered again", "err", err)
	}
}

// lost runs when the group session died (e.g. the member was evicted): the partitions may
// already belong to someone else, so nothing is committed.
func (sub *subscription) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	sub.stop(nonNil(lost[sub.topic]))
}

// nonNil keeps an empty revoke from meaning "all partitions" to stop.
func nonNil(ps []int32) []int32 {
	if ps == nil {
		return []int32{}
	}
	return ps
}

// mark records an acked record for commit. Without a group there is nothing to commit.
func (sub *subscription) mark(rec *kgo.Record) {
	if sub.group {
		sub.cl.MarkCommitRecords(rec)
	}
}
