// Package app is the projector: it folds the event log into PostgreSQL tables (tickets, runs,
// step_runs, the ticket_events audit trail). Each batch of a partition is applied in one
// transaction together with the partition's next offset, so a crash at any point neither
// loses nor doubles a row, and a redelivered record is recognised and skipped.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config is read from the environment.
type Config struct {
	// Group is the Kafka consumer group; projector replicas share partitions through it.
	Group string `env:"TICKETFLOW_PROJECTOR_GROUP" envDefault:"projector"`
	// ResetOnTopicChange rebuilds from the new topic when the topic was deleted and recreated
	// (new topic id). Off by default: a recreated topic stops the projector with an error,
	// because silently skipping or re-reading is a decision for a person.
	ResetOnTopicChange bool `env:"TICKETFLOW_PROJECTOR_RESET_ON_TOPIC_CHANGE" envDefault:"false"`
	// InstanceID is this member's static group membership id (KIP-345): a projector that
	// restarts with the same id takes its partitions back at once instead of waiting for the
	// dead member's session to time out. Unset: dynamic membership (right for Deployments,
	// whose pods get new names).
	InstanceID string `env:"TICKETFLOW_INSTANCE_ID"`
}

// consumerName is the consumer_offsets key; the command service reads it to wait for its writes.
const consumerName = "projector"

// Deps are the adapters the projector drives.
type Deps struct {
	Log      *slog.Logger
	DB       *pgxpool.Pool
	Kafka    config.Kafka
	Registry prometheus.Registerer
}

// Projector consumes the topic and maintains the tables.
type Projector struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	topicID string
	metrics metrics

	mu    sync.Mutex
	ready bool
}

type metrics struct {
	applied prometheus.Counter
	skipped *prometheus.CounterVec
	batchMS prometheus.Histogram
}

// New builds a projector; Run starts it.
func New(cfg Config, deps Deps) *Projector {
	p := &Projector{cfg: cfg, deps: deps, log: deps.Log.With("service", "projector")}
	p.metrics = metrics{
		applied: prometheus.NewCounter(prometheus.CounterOpts{Name: "ticketflow_projector_events_applied_total", Help: "Events written to the projection tables."}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ticketflow_projector_events_skipped_total", Help: "Records skipped, by reason."}, []string{"reason"}),
		batchMS: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ticketflow_projector_batch_seconds", Help: "Time to apply one partition batch.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
	if deps.Registry != nil {
		deps.Registry.MustRegister(p.metrics.applied, p.metrics.skipped, p.metrics.batchMS)
	}
	return p
}

// Ready reports whether the projector has joined its group and is consuming.
func (p *Projector) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready
}

// Run consumes until ctx ends.
func (p *Projector) Run(ctx context.Context) error {
	var static []kgo.Opt
	if p.cfg.InstanceID != "" {
		static = append(static, kgo.InstanceID("projector@"+p.cfg.InstanceID))
	}
	cl, err := kafka.NewClient(p.deps.Kafka, append(static,
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.deps.Kafka.Topic),
		kgo.DisableAutoCommit(), // offsets live in PostgreSQL, with the rows
		kgo.AdjustFetchOffsetsFn(p.storedOffsets),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { p.setReady(true) }),
		kgo.FetchMaxWait(200*time.Millisecond),
		// Transaction markers are delivered too, so the stored offset moves past them and
		// "caught up" means next_offset = the partition's end, as for any consumer.
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := kafka.WaitReady(ctx, cl, p.log); err != nil {
		return err
	}
	if err := kafka.EnsureTopic(ctx, cl, p.deps.Kafka); err != nil {
		return err
	}
	if p.topicID, err = kafka.TopicID(ctx, cl, p.deps.Kafka.Topic); err != nil {
		return err
	}
	if err := p.checkTopicIdentity(ctx); err != nil {
		return err
	}
	p.log.Info("projector consuming", "topic", p.deps.Kafka.Topic, "group", p.cfg.Group)
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			p.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		var applyErr error
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if applyErr != nil || len(fp.Records) == 0 {
				return
			}
			applyErr = p.applyBatch(ctx, fp.Partition, fp.Records)
		})
		if applyErr != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The transaction rolled back; nothing of the batch was written. Rewind the
			// in-memory fetch positions to what PostgreSQL says and try again.
			// PostgreSQL may be restarting: keep trying (with backoff) rather than exit, so a
			// database restart does not take every projector down with it.
			p.log.Error("apply batch failed; retrying from stored offsets", "err", applyErr)
			for wait := time.Second; ; wait = min(2*wait, 10*time.Second) {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
				err := p.rewind(ctx, cl)
				if err == nil {
					break
				}
				p.log.Error("reading stored offsets failed; retrying", "err", err, "retry_in", wait)
			}
		}
	}
}

func (p *Projector) setReady(v bool) {
	p.mu.Lock()
	p.ready = v
	p.mu.Unlock()
}

// storedOffsets replaces the offsets Kafka remembers for the group with those stored in
// PostgreSQL, which are exactly where the committed rows end.
func (p *Projector) storedOffsets(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	next, err := p.loadOffsets(ctx)
	if err != nil {
		return nil, err
	}
	for topic, parts := range assigned {
		for part := range parts {
			if o, ok := next[part]; ok && topic == p.deps.Kafka.Topic {
				parts[part] = kgo.NewOffset().At(o)
			} else {
				parts[part] = kgo.NewOffset().AtStart()
			}
		}
	}
	return assigned, nil
}

func (p *Projector) loadOffsets(ctx context.Context) (map[int32]int64, error) {
	rows, err := p.deps.DB.Query(ctx, `SELECT partition, next_offset FROM consumer_offsets WHERE consumer = $1 AND topic = $2`,
		consumerName, p.deps.Kafka.Topic)
	if err != nil {
		return nil, fmt.Errorf("load stored offsets: %w", err)
	}
	next := map[int32]int64{}
	for rows.Next() {
		var part int32
		var off int64
		if err := rows.Scan(&part, &off); err != nil {
			return nil, err
		}
		next[part] = off
	}
	return next, rows.Err()
}

func (p *Projector) rewind(ctx context.Context, cl *kgo.Client) error {
	next, err := p.loadOffsets(ctx)
	if err != nil {
		return err
	}
	set := map[string]map[int32]kgo.EpochOffset{p.deps.Kafka.Topic: {}}
	for part, o := range next {
		set[p.deps.Kafka.Topic][part] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	cl.SetOffsets(set)
	return nil
}

// ErrTopicRecreated stops the projector when the topic's id differs from the one its stored
// offsets belong to.
var ErrTopicRecreated = errors.New("projector: the topic was recreated (new topic id) since the stored offsets were written")

func (p *Projector) checkTopicIdentity(ctx context.Context) error {
	var stale int
	err := p.deps.DB.QueryRow(ctx, `SELECT count(*) FROM consumer_offsets WHERE consumer = $1 AND topic = $2 AND topic_id <> $3`,
		consumerName, p.deps.Kafka.Topic, p.topicID).Scan(&stale)
	if err != nil {
		return fmt.Errorf("check topic identity: %w", err)
	}
	if stale == 0 {
		return nil
	}
	if !p.cfg.ResetOnTopicChange {
		return fmt.Errorf("%w; set TICKETFLOW_PROJECTOR_RESET_ON_TOPIC_CHANGE=true to project the new topic from its start", ErrTopicRecreated)
	}
	p.log.Warn("topic recreated: projecting the new topic from its start", "topic", p.deps.Kafka.Topic, "topic_id", p.topicID)
	_, err = p.deps.DB.Exec(ctx, `DELETE FROM consumer_offsets WHERE consumer = $1 AND topic = $2`, consumerName, p.deps.Kafka.Topic)
	return err
}

// applyBatch writes one partition's records and the partition's next offset atomically.
func (p *Projector) applyBatch(ctx context.Context, partition int32, recs []*kgo.Record) error {
	start := time.Now()
	err := pgx.BeginFunc(ctx, p.deps.DB, func(tx pgx.Tx) error {
		// Lock the partition's offset row: during a rebalance two replicas may briefly hold
		// the same partition; the second waits, then sees the records as already applied.
		var next int64 = -1
		err := tx.QueryRow(ctx, `SELECT next_offset FROM consumer_offsets WHERE consumer = $1 AND topic = $2 AND partition = $3 FOR UPDATE`,
			consumerName, p.deps.Kafka.Topic, partition).Scan(&next)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		last := int64(-1)
		for _, rec := range recs {
			if rec.Offset < next {
				p.metrics.skipped.WithLabelValues("duplicate").Inc()
				continue
			}
			if rec.Attrs.IsControl() {
				last = rec.Offset // a commit or abort marker: nothing to project, but consumed
				continue
			}
			if err := p.apply(ctx, tx, rec); err != nil {
				return fmt.Errorf("partition %d offset %d: %w", partition, rec.Offset, err)
			}
			last = rec.Offset
		}
		if last < 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO consumer_offsets (consumer, topic, partition, next_offset, topic_id, updated_at)
			VALUES ($1, $2, $3, $4, $5, now())
			ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = excluded.next_offset, topic_id = excluded.topic_id, updated_at = now()`,
			consumerName, p.deps.Kafka.Topic, partition, last+1, p.topicID)
		return err
	})
	p.metrics.batchMS.Observe(time.Since(start).Seconds())
	return err
}
