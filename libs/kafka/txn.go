package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrFenced means a newer producer with the same transactional id took over: this one's
// transaction was aborted and nothing it produced will ever be visible.
var ErrFenced = errors.New("kafka: producer fenced by a newer one with the same transactional id")

// txnTimeout bounds how long an open transaction of a dead producer can hold back
// read_committed consumers of its partition before the broker aborts it (a retry with the
// same transactional id aborts it sooner). A live Append takes milliseconds; one that
// outlasts this is aborted by the broker and reported unconfirmed, which a retry resolves.
const txnTimeout = 10 * time.Second

// TxnProducer appends envelopes in Kafka transactions under one transactional id. Creating
// one fences every older producer with the same id: their open transaction is aborted and
// their later commits fail. Not safe for concurrent Appends.
type TxnProducer struct {
	cl    *kgo.Client
	topic string
}

// NewTxnProducer initialises the producer id for transactionalID (fencing older producers
// with that id) before returning.
func NewTxnProducer(ctx context.Context, cfg config.Kafka, transactionalID string) (*TxnProducer, error) {
	if transactionalID == "" {
		return nil, errors.New("kafka: empty transactional id")
	}
	cl, err := NewClient(cfg, kgo.TransactionalID(transactionalID), kgo.TransactionTimeout(txnTimeout))
	if err != nil {
		return nil, err
	}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("%w: init producer id: %v", ErrUnavailable, err)
	}
	return &TxnProducer{cl: cl, topic: cfg.Topic}, nil
}

// Append begins a transaction, produces every envelope and commits. On success the records
// are visible to read_committed consumers and their positions are returned. ErrFenced: a
// newer producer took over and nothing of this transaction is visible. ErrUnconfirmed: ctx
// ended before the commit was confirmed (it may or may not have happened). ErrUnavailable:
// the transaction was aborted, nothing is visible.
func (p *TxnProducer) Append(ctx context.Context, envs ...events.Envelope) ([]events.Position, error) {
	recs := make([]*kgo.Record, 0, len(envs))
	for _, env := range envs {
		rec, err := Record(p.topic, env, traceparent(ctx))
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	if err := p.cl.BeginTransaction(); err != nil {
		return nil, p.classify(err, false)
	}
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		p.abort()
		return nil, p.classify(err, ctx.Err() != nil)
	}
	if err := p.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		if isFenced(err) {
			return nil, fmt.Errorf("%w: %v", ErrFenced, err)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: commit: %v", ErrUnconfirmed, err)
		}
		p.abort()
		return nil, fmt.Errorf("%w: commit: %v", ErrUnavailable, err)
	}
	out := make([]events.Position, len(recs))
	for i, rec := range recs {
		out[i] = events.Position{Partition: rec.Partition, Offset: rec.Offset}
	}
	return out, nil
}

// abort ends a failed transaction so the client can begin another; its records stay hidden
// from read_committed consumers either way.
func (p *TxnProducer) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.cl.AbortBufferedRecords(ctx)
	_ = p.cl.EndTransaction(ctx, kgo.TryAbort)
}

func (p *TxnProducer) classify(err error, ctxEnded bool) error {
	switch {
	case isFenced(err):
		return fmt.Errorf("%w: %v", ErrFenced, err)
	case ctxEnded:
		// Produced records of an uncommitted transaction are never visible, but the caller
		// cannot tell an abort from a commit it did not see: treat as unconfirmed.
		return fmt.Errorf("%w: %v", ErrUnconfirmed, err)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.InvalidProducerIDMapping) || errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}

// Close releases the producer. An open transaction is left to the broker (aborted at its
// timeout or when a newer producer with the same id fences it).
func (p *TxnProducer) Close() { p.cl.Close() }
