package adapters

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/services/command/app"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EventLog is the Kafka adapter (app.EventLog): the plain idempotent producer for writes
// without an Idempotency-Key, transactional producers (one transactional id per key) for
// writes with one, and the reads a retry needs to find an earlier attempt's outcome. Its own
// admin client is made on first use; Close releases it.
type EventLog struct {
	cfg      config.Kafka
	producer *kafka.Producer

	adminOnce sync.Once
	admin     *kadm.Client
	adminCl   *kgo.Client
	adminErr  error
}

func (l *EventLog) adminClient() (*kadm.Client, error) {
	l.adminOnce.Do(func() {
		if len(l.cfg.Brokers) == 0 {
			l.adminErr = errors.New("no Kafka brokers configured for idempotent writes (Deps.Kafka)")
			return
		}
		l.adminCl, l.adminErr = kafka.NewClient(l.cfg)
		if l.adminErr == nil {
			l.admin = kadm.NewClient(l.adminCl)
		}
	})
	return l.admin, l.adminErr
}

// Close releases the admin client.
func (l *EventLog) Close() {
	if l.adminCl != nil {
		l.adminCl.Close()
	}
}

// NewEventLog appends with producer; cfg (its topic set to the producer's) is what keyed
// writes open their transactional producers and recovery scans with.
func NewEventLog(cfg config.Kafka, producer *kafka.Producer) *EventLog {
	cfg.Topic = producer.Topic()
	return &EventLog{cfg: cfg, producer: producer}
}

// Append appends with the shared idempotent producer.
func (l *EventLog) Append(ctx context.Context, envs ...events.Envelope) ([]events.Position, error) {
	return l.producer.Append(ctx, envs...)
}

// Transactional opens the producer of transactionalID, fencing any earlier one.
func (l *EventLog) Transactional(ctx context.Context, transactionalID string) (app.Transaction, error) {
	p, err := kafka.NewTxnProducer(ctx, l.cfg, transactionalID)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Position is the partition a ticket's events go to and that partition's current end: every
// record appended afterwards lies at or after it.
func (l *EventLog) Position(ctx context.Context, ticketID string) (int32, int64, error) {
	adm, err := l.adminClient()
	if err != nil {
		return 0, 0, err
	}
	listed, err := adm.ListEndOffsets(ctx, l.cfg.Topic)
	if err != nil {
		return 0, 0, fmt.Errorf("list end offsets: %w", err)
	}
	if err := listed.Error(); err != nil {
		return 0, 0, fmt.Errorf("list end offsets: %w", err)
	}
	ends := listed[l.cfg.Topic]
	if len(ends) == 0 {
		return 0, 0, fmt.Errorf("topic %q has no partitions", l.cfg.Topic)
	}
	// The same partitioner the producers use (franz-go's default, Kafka's murmur2 on the key).
	partition := int32(kgo.StickyKeyPartitioner(nil).ForTopic(l.cfg.Topic).Partition(&kgo.Record{Key: []byte(ticketID)}, len(ends)))
	end, ok := ends[partition]
	if !ok {
		return 0, 0, fmt.Errorf("no end offset for partition %d", partition)
	}
	return partition, end.Offset, nil
}

// scanTimeout bounds a recovery scan; a retry that cannot finish it answers 503 and leaves
// the key claimed, so a later retry scans again (never appends blindly).
const scanTimeout = 5 * time.Second

// Contains reports whether any of ids is committed in partition at or after from. Call it
// only after fencing the transactional id (NewTxnProducer): then no attempt's transaction
// is still open, and what the scan does not find will never appear.
func (l *EventLog) Contains(ctx context.Context, partition int32, from int64, ids []string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, scanTimeout)
	defer cancel()
	if _, err := l.adminClient(); err != nil {
		return false, err
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	found := false
	err := kafka.ScanPartition(ctx, l.adminCl, l.cfg.Topic, partition, from, kafka.ScanToEnd, func(rec *kgo.Record) (bool, error) {
		env, err := events.DecodeEnvelope(rec.Value)
		found = err == nil && want[env.ID]
		return !found, nil
	})
	if err != nil {
		return false, fmt.Errorf("scan partition %d from %d: %w", partition, from, err)
	}
	return found, nil
}
