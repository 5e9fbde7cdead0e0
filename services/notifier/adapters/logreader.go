// Package adapters is what the notifier drives: the event topic in Kafka (the live consumer
// and exact range reads for replays) and PostgreSQL (ticket owners, used WebSocket tickets).
package adapters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/services/notifier/app"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// LogReader is the event topic as the notifier reads it (app.EventLog): a live consumer of
// every partition (no consumer group: every replica sees everything), and any range of a
// partition read straight from Kafka with kafka.ScanPartition, so replay needs no consumer per
// client. Kafka is the source of truth: the projector's ticket_events may lag, the log cannot.
type LogReader struct {
	kcfg config.Kafka
	log  *slog.Logger
	cl   *kgo.Client // range reads and offset listings
	adm  *kadm.Client
}

// NewLogReader connects to kcfg's brokers (lazily: nothing is dialled yet).
func NewLogReader(kcfg config.Kafka, log *slog.Logger) (*LogReader, error) {
	cl, err := kafka.NewClient(kcfg)
	if err != nil {
		return nil, err
	}
	return &LogReader{kcfg: kcfg, log: log, cl: cl, adm: kadm.NewClient(cl)}, nil
}

// Close releases the reader's client.
func (r *LogReader) Close() { r.cl.Close() }

// Consume reads every partition of the topic from the log start until ctx ends. Transaction
// markers are handed over too (Control): they advance a partition's position like any record,
// so catching up with an end offset that lands just past a marker completes.
func (r *LogReader) Consume(ctx context.Context, apply func(app.Record)) error {
	cl, err := kafka.NewClient(r.kcfg,
		kgo.ConsumeTopics(r.kcfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(time.Second),
		kgo.KeepControlRecords(),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return errors.New("notifier: kafka client closed")
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				r.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		left := fetches.NumRecords()
		fetches.EachRecord(func(rec *kgo.Record) {
			left--
			r := record(rec)
			r.Ctx = rec.Context
			r.CaughtUp = left == 0
			apply(r)
		})
		// No consumer group: every notifier reads every partition; its lag is reported as group "notifier".
		kafka.ObserveLag("notifier", fetches)
	}
}

func record(rec *kgo.Record) app.Record {
	return app.Record{Partition: rec.Partition, Offset: rec.Offset, Key: rec.Key, Value: rec.Value, Control: rec.Attrs.IsControl()}
}

// Read calls fn for each committed record of partition p with from <= offset <= to, in log
// order. It returns app.ErrHistoryGone when from is below the log start.
func (r *LogReader) Read(ctx context.Context, p int32, from, to int64, fn func(app.Record) error) error {
	if from > to {
		return nil
	}
	err := kafka.ScanPartition(ctx, r.cl, r.kcfg.Topic, p, from, to+1, func(rec *kgo.Record) (bool, error) {
		return true, fn(record(rec))
	})
	if errors.Is(err, kafka.ErrBeforeLogStart) {
		return fmt.Errorf("%w: %w", app.ErrHistoryGone, err)
	}
	return err
}

// Ends returns the last stable offset of every partition: the end of what read_committed
// consumers can read (past it, records of open transactions wait for their outcome).
func (r *LogReader) Ends(ctx context.Context) (map[int32]int64, error) {
	return r.listed(ctx, r.adm.ListCommittedOffsets)
}

// Starts returns the log start offset of every partition.
func (r *LogReader) Starts(ctx context.Context) (map[int32]int64, error) {
	return r.listed(ctx, r.adm.ListStartOffsets)
}

func (r *LogReader) listed(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error)) (map[int32]int64, error) {
	lo, err := list(ctx, r.kcfg.Topic)
	if err != nil {
		return nil, err
	}
	if err := lo.Error(); err != nil {
		return nil, err
	}
	out := make(map[int32]int64)
	lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}
