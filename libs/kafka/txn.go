package kafka

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrFenced means another producer with the same transactional id has been initialised since
// this one: the broker refuses this producer's writes for good. Whatever it was doing belongs
// to the newer producer now; nothing of the failed Append is visible to read_committed readers.
var ErrFenced = errors.New("transactional producer fenced by a newer producer with the same transactional id")

// txnTimeout bounds how long a transaction left open by a stopped or dead producer holds back
// the partition's last stable offset (what read_committed consumers may read) before the
// broker aborts it. Appends are single short transactions, far below it.
const txnTimeout = 10 * time.Second

// txnAbortTimeout bounds cleaning up a failed transaction; past it the producer is discarded.
const txnAbortTimeout = 5 * time.Second

// TxnProducer appends envelopes in Kafka transactions under one transactional id. Creating it
// fences every older producer with the same id and aborts its open transaction, so whoever
// created the newest one is the only writer for that id: this is how a processor that took
// over a run shuts the previous owner out at the broker, even if that owner is only paused.
type TxnProducer struct {
	mu    sync.Mutex
	cl    *kgo.Client
	topic string
	id    string
	// broken is set once the producer can no longer be used (fenced, or a transaction that
	// could not be ended); every later Append returns it.
	broken error
}

// NewTxnProducer connects, and initialises the producer id at once so that the fencing of
// older producers with the same transactional id has happened when it returns.
func NewTxnProducer(ctx context.Context, cfg config.Kafka, transactionalID string) (*TxnProducer, error) {
	if transactionalID == "" {
		return nil, errors.New("kafka: empty transactional id")
	}
	cl, err := newClient(cfg, false, kgo.TransactionalID(transactionalID), kgo.TransactionTimeout(txnTimeout))
	if err != nil {
		return nil, err
	}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		if fenced(err) {
			return nil, fmt.Errorf("kafka: init transactional producer %q: %w: %v", transactionalID, ErrFenced, err)
		}
		return nil, fmt.Errorf("kafka: init transactional producer %q: %w: %w", transactionalID, ErrUnavailable, err)
	}
	return &TxnProducer{cl: cl, topic: cfg.Topic, id: transactionalID}, nil
}

// fenced reports the broker errors that mean a newer producer owns the transactional id.
// TransactionalIDAuthorizationFailed is included: a producer refused the id can never write
// under it again either, and must stop the same way.
func fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}

// Append writes the envelopes in one transaction: all of them become visible to
// read_committed readers at once, or none. Errors:
//   - ErrFenced: a newer producer took the transactional id; nothing of this call is
//     visible and the producer is unusable (Close it, do not retry).
//   - ErrUnavailable: the transaction was not committed and never will be (aborted, or left
//     open for the broker to abort); nothing was appended.
//   - ErrUnconfirmed: the commit was sent but its outcome is unknown; the envelopes may be
//     visible. Retrying is safe where readers dedupe by event id, as with Producer.Append.
func (p *TxnProducer) Append(ctx context.Context, envs ...events.Envelope) ([]events.Position, error) {
	if len(envs) == 0 {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for attempt := 1; ; attempt++ {
		recs, err := records(p.topic, envs)
		if err != nil {
			return nil, err
		}
		err = p.transact(ctx, recs)
		if errors.Is(err, errAbortedOnCommit) && attempt < 2 {
			continue // aborted is final, so a second transaction cannot duplicate the first
		}
		if err != nil {
			return nil, err
		}
		return positions(recs), nil
	}
}

// errAbortedOnCommit: the transaction whose commit was asked was aborted (see committed).
var errAbortedOnCommit = fmt.Errorf("%w: the transaction was aborted although its commit was asked", ErrUnavailable)

// transact appends recs in one transaction.
func (p *TxnProducer) transact(ctx context.Context, recs []*kgo.Record) error {
	if p.broken != nil {
		return p.broken
	}
	if err := p.cl.BeginTransaction(); err != nil {
		return p.fail(err)
	}
	if err := produceAll(ctx, p.cl, recs); err != nil {
		if fenced(err) {
			return p.fail(err)
		}
		// The commit was never sent, so these records can only ever be aborted.
		p.abort()
		if errors.Is(err, ErrUnconfirmed) {
			return fmt.Errorf("%w: transaction not committed: %w", ErrUnavailable, err)
		}
		return err
	}
	if err := p.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		switch {
		case fenced(err):
			return p.fail(err)
		case errors.Is(err, kerr.OperationNotAttempted), errors.Is(err, kerr.TransactionAbortable):
			p.abort()
			return fmt.Errorf("%w: commit not attempted: %w", ErrUnavailable, err)
		default:
			// The commit may have reached the coordinator. Aborting now re-initialises the
			// producer id, which settles the transaction one way or the other broker-side
			// without telling which: the outcome stays unknown to the caller.
			p.abort()
			return fmt.Errorf("%w: commit: %w", ErrUnconfirmed, err)
		}
	}
	return p.committed(ctx, recs)
}

// committed checks that recs are readable as committed. franz-go's EndTransaction(TryCommit)
// ends the transaction with an abort and returns nil when it believes no produce of the
// transaction succeeded (its KIP-890 bookkeeping of the partitions added); that has been seen
// right after every record of it was acknowledged (the command's crash-inside-transaction
// test, about once in a hundred runs). A nil EndTransaction is therefore not taken
// as a commit: the records must be found by a read_committed scan of their offsets. Not
// found means aborted, which is final (ErrUnavailable: nothing was appended); a scan that
// cannot finish leaves the outcome unknown (ErrUnconfirmed).
func (p *TxnProducer) committed(ctx context.Context, recs []*kgo.Record) error {
	ours := map[int32]map[int64]bool{}
	for _, rec := range recs {
		if ours[rec.Partition] == nil {
			ours[rec.Partition] = map[int64]bool{}
		}
		ours[rec.Partition][rec.Offset] = true
	}
	for partition, offsets := range ours {
		first, last := int64(math.MaxInt64), int64(-1)
		for o := range offsets {
			first, last = min(first, o), max(last, o)
		}
		found := 0
		err := ScanPartition(ctx, p.cl, p.topic, partition, first, last+1, func(rec *kgo.Record) (bool, error) {
			if offsets[rec.Offset] {
				found++
			}
			return true, nil
		})
		switch {
		case err != nil:
			return fmt.Errorf("%w: could not read back the committed transaction on partition %d: %w", ErrUnconfirmed, partition, err)
		case found < len(offsets):
			return fmt.Errorf("%w (%d of %d records committed on partition %d)", errAbortedOnCommit, found, len(offsets), partition)
		}
	}
	return nil
}

// fail records a terminal error and returns it.
func (p *TxnProducer) fail(err error) error {
	if fenced(err) {
		// %v: a fenced error must not also match ErrUnavailable through its cause.
		p.broken = fmt.Errorf("%w (transactional id %q): %v", ErrFenced, p.id, err)
	} else {
		p.broken = fmt.Errorf("%w: transactional producer %q unusable: %w", ErrUnavailable, p.id, err)
	}
	return p.broken
}

// abort ends the open transaction without committing it. If that fails the producer is
// discarded: its open transaction is aborted by the broker at the timeout, or at once by the
// next producer initialised with the same id.
func (p *TxnProducer) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), txnAbortTimeout)
	defer cancel()
	err := p.cl.AbortBufferedRecords(ctx)
	if err == nil {
		err = p.cl.EndTransaction(ctx, kgo.TryAbort)
	}
	if err != nil {
		_ = p.fail(fmt.Errorf("abort: %w", err))
	}
}

// Close releases the client. An open transaction (only after a failed abort) is left to the
// broker to abort.
func (p *TxnProducer) Close() { p.cl.Close() }
