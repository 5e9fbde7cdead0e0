package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func logEnv(ticket, msg string) events.Envelope {
	return events.MustNew(ticket, "run", "test", &events.LogEmittedData{Level: "INFO", Message: msg})
}

// committedMessages reads partition 0 with a read_committed consumer (kafka.NewClient) up to
// the sentinel message, which the test appends last without a transaction.
func committedMessages(t *testing.T, b *kafkatest.Broker, sentinel string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kafka.NewClient(b.Config, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{b.Config.Topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("sentinel %q never read; read %v", sentinel, out)
		}
		done := false
		fetches.EachRecord(func(rec *kgo.Record) {
			ev, err := kafka.Event(rec)
			if err != nil {
				t.Errorf("record %d: %v", rec.Offset, err)
				return
			}
			msg := message(ev)
			if msg == sentinel {
				done = true
			} else if !done {
				out = append(out, msg)
			}
		})
		if done {
			return out
		}
	}
}

// scanned returns every committed message ScanPartition sees on partition 0 up to the end.
func scanned(t *testing.T, b *kafkatest.Broker) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []string
	err := kafka.ScanPartition(ctx, b.Client, b.Config.Topic, 0, 0, kafka.ScanToEnd, func(rec *kgo.Record) (bool, error) {
		ev, err := kafka.Event(rec)
		if err != nil {
			return false, err
		}
		out = append(out, message(ev))
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func message(ev events.Event) string {
	p, err := ev.Decode()
	if err != nil {
		return "undecodable: " + err.Error()
	}
	return p.(*events.LogEmittedData).Message
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// startTxnTest starts a one-broker cluster and gives the test 30 s.
func startTxnTest(t *testing.T) (*kafkatest.Broker, context.Context) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return kafkatest.Start(t, 1), ctx
}

// A committed Append is visible, at the positions it returned; an aborted transaction and one
// left open and then aborted by a fencing producer are invisible to read_committed readers
// and to ScanPartition, which still ends on a log whose tail is transaction markers.
func TestTxnProducerCommitVisibleAbortInvisible(t *testing.T) {
	b, ctx := startTxnTest(t)

	p := txnProducer(ctx, t, b, "tx-visible")
	envs := []events.Envelope{logEnv("t", "c1"), logEnv("t", "c2"), logEnv("t", "c3")}
	pos, err := p.Append(ctx, envs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(pos) != 3 || pos[1].Offset != pos[0].Offset+1 || pos[2].Offset != pos[1].Offset+1 {
		t.Fatalf("positions %+v, want three consecutive offsets", pos)
	}
	if got := scanned(t, b); !equal(got, []string{"c1", "c2", "c3"}) {
		t.Fatalf("scan after commit: %v", got)
	}

	// An explicitly aborted transaction (raw client: TxnProducer aborts only on errors).
	raw, err := kafka.NewClient(b.Config, kgo.TransactionalID("tx-raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	produceRaw := func(raw *kgo.Client, msg string) {
		t.Helper()
		if err := raw.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		rec, err := kafka.Record(b.Config.Topic, logEnv("t", msg), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produceRaw(raw, "aborted")
	if err := raw.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(ctx, logEnv("t", "c4")); err != nil {
		t.Fatal(err)
	}
	// A transaction left open, as by a producer that was stopped mid-append: a new producer
	// with the same id aborts it.
	produceRaw(raw, "left-open")
	taker := txnProducer(ctx, t, b, "tx-raw")
	// The log now ends on the abort marker.
	if got := scanned(t, b); !equal(got, []string{"c1", "c2", "c3", "c4"}) {
		t.Fatalf("scan: %v, want c1..c4", got)
	}
	// Data appended after an aborted range is found at its position.
	pos, err = taker.Append(ctx, logEnv("t", "c5"))
	if err != nil {
		t.Fatal(err)
	}
	var at string
	err = kafka.ScanPartition(ctx, b.Client, b.Config.Topic, 0, pos[0].Offset, pos[0].Offset+1, func(rec *kgo.Record) (bool, error) {
		ev, err := kafka.Event(rec)
		if err == nil {
			at = message(ev)
		}
		return false, err
	})
	if err != nil || at != "c5" {
		t.Fatalf("record at returned position %d: %q, %v", pos[0].Offset, at, err)
	}
	// A scan started while a transaction is open waits for it to be decided.
	raw2, err := kafka.NewClient(b.Config, kgo.TransactionalID("tx-raw2"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw2.Close()
	produceRaw(raw2, "open-then-committed")
	committed := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		committed <- raw2.EndTransaction(ctx, kgo.TryCommit)
	}()
	if got := scanned(t, b); !equal(got, []string{"c1", "c2", "c3", "c4", "c5", "open-then-committed"}) {
		t.Fatalf("scan over an open transaction: %v", got)
	}
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if _, err := b.Producer.Append(ctx, logEnv("t", "end")); err != nil {
		t.Fatal(err)
	}
	if got := committedMessages(t, b, "end"); !equal(got, []string{"c1", "c2", "c3", "c4", "c5", "open-then-committed"}) {
		t.Fatalf("read_committed consumer read %v, want c1..c5", got)
	}
}

// A second producer with the same transactional id fences the first: the first's next
// Append fails with ErrFenced and stays failed, and nothing it tried is visible.
func TestTxnProducerFencedBySecond(t *testing.T) {
	b, ctx := startTxnTest(t)
	first := txnProducer(ctx, t, b, "ticketflow-run-x")
	if _, err := first.Append(ctx, logEnv("t", "first-1")); err != nil {
		t.Fatal(err)
	}
	second := txnProducer(ctx, t, b, "ticketflow-run-x")
	_, err := first.Append(ctx, logEnv("t", "zombie-1"), logEnv("t", "zombie-2"))
	t.Logf("fenced Append: %v", err)
	if !errors.Is(err, kafka.ErrFenced) {
		t.Fatalf("fenced producer's Append: %v, want ErrFenced", err)
	}
	if _, err := first.Append(ctx, logEnv("t", "zombie-3")); !errors.Is(err, kafka.ErrFenced) {
		t.Fatalf("fenced producer's second Append: %v, want ErrFenced", err)
	}
	if _, err := second.Append(ctx, logEnv("t", "second-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Producer.Append(ctx, logEnv("t", "end")); err != nil {
		t.Fatal(err)
	}
	want := []string{"first-1", "second-1"}
	if got := committedMessages(t, b, "end"); !equal(got, want) {
		t.Fatalf("read_committed consumer read %v, want %v", got, want)
	}
	if got := scanned(t, b); !equal(got, append(want, "end")) {
		t.Fatalf("scan read %v", got)
	}
}

// franz-go's EndTransaction(TryCommit) can end a transaction with an abort and report
// success (when it believes none of its produces succeeded; seen after they all had). The
// broker here turns commits into aborts the same way. Append must never report aborted
// records as appended: it appends again once (an abort is final, so no copy can appear),
// and when that is aborted too it says nothing was appended (ErrUnavailable, not unconfirmed).
func TestTxnAppendIsCommittedWhenItSaysSo(t *testing.T) {
	b, ctx := startTxnTest(t)
	p := txnProducer(ctx, t, b, "tx-silent-abort")
	cluster := kafka.ClusterOf(b.Embedded)
	abortCommits := func(n int) {
		cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
			req.(*kmsg.EndTxnRequest).Commit = false
			if n--; n > 0 {
				cluster.KeepControl()
			} else {
				cluster.DropControl()
			}
			return nil, nil, false // the cluster handles the request, now an abort
		})
	}

	abortCommits(1)
	if _, err := p.Append(ctx, logEnv("t", "second-try")); err != nil {
		t.Fatalf("Append whose first transaction the broker aborted: %v, want the second committed", err)
	}
	if got := scanned(t, b); !equal(got, []string{"second-try"}) {
		t.Fatalf("log: %v, want the record once", got)
	}

	abortCommits(2)
	_, err := p.Append(ctx, logEnv("t", "never"))
	if !errors.Is(err, kafka.ErrUnavailable) || errors.Is(err, kafka.ErrUnconfirmed) {
		t.Fatalf("Append whose transactions the broker aborted: %v, want ErrUnavailable", err)
	}
	if got := scanned(t, b); !equal(got, []string{"second-try"}) {
		t.Fatalf("log after the aborted append: %v", got)
	}
}

// txnProducer is a transactional producer with id on b, closed when the test ends.
func txnProducer(ctx context.Context, t *testing.T, b *kafkatest.Broker, id string) *kafka.TxnProducer {
	t.Helper()
	p, err := kafka.NewTxnProducer(ctx, b.Config, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
