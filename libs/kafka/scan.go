package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ScanToEnd as the end of ScanPartition means the partition's end (high watermark) when the
// scan starts: every record appended before it, once its transaction is decided. A record
// committed after a transaction that is still open sits past the last stable offset, so
// stopping there could miss it; the scan waits for such transactions instead (at most the
// producers' transaction timeout), which is what "is this event in the log?" needs.
const ScanToEnd int64 = -1

// ErrBeforeLogStart is wrapped in ScanPartition's error when from lies below the partition's
// log start: retention or a DeleteRecords removed that history, and nothing can read it any
// more. (The error also still wraps kerr.OffsetOutOfRange.)
var ErrBeforeLogStart = errors.New("kafka: offset below the partition's log start")

// scanPageBytes bounds one Fetch response: a scan holds at most one page in memory.
const scanPageBytes = 1 << 20

// ScanPartition calls fn for every committed record of topic/partition with from <= offset <
// to (or ScanToEnd), in log order, until fn returns false or an error. Records of aborted or still open
// transactions and transaction markers are skipped, and the scan knows exactly where it
// stands across them, so it ends even when the range finishes on a marker (a consumer
// counting returned offsets against a high watermark never would). It needs no consumer and
// no group: plain Fetch requests to the partition leader through cl.
func ScanPartition(ctx context.Context, cl *kgo.Client, topic string, partition int32, from, to int64,
	fn func(*kgo.Record) (bool, error)) error {
	adm := kadm.NewClient(cl)
	if to == ScanToEnd {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return fmt.Errorf("kafka: end of %s/%d: %w", topic, partition, err)
		}
		end, ok := ends.Lookup(topic, partition)
		if !ok || end.Err != nil {
			return fmt.Errorf("kafka: end of %s/%d: %v", topic, partition, end.Err)
		}
		to = end.Offset
	}
	// While fn works through one page the next is already on its way: a long scan (a replay
	// of thousands of events) then costs about the larger of fetching and fn, not their sum.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type page struct {
		fp   kgo.FetchPartition
		next int64
		err  error
	}
	fetch := func(leader int32, topicID [16]byte, at int64) <-chan page {
		ch := make(chan page, 1) // never blocks: a prefetch nobody waits for ends with ctx
		go func() {
			fp, next, err := fetchPage(ctx, cl, leader, topic, topicID, partition, at)
			ch <- page{fp, next, err}
		}()
		return ch
	}
	var (
		leader  int32 = -1
		topicID [16]byte
		pending <-chan page // the fetch at from, when already asked for
	)
	for attempt := 0; from < to; {
		if leader < 0 {
			md, err := adm.Metadata(ctx, topic)
			if err != nil {
				return fmt.Errorf("kafka: metadata of %s: %w", topic, err)
			}
			td, ok := md.Topics[topic]
			if !ok || td.Err != nil {
				return fmt.Errorf("kafka: topic %q: %v", topic, td.Err)
			}
			pd, ok := td.Partitions[partition]
			if !ok || pd.Leader < 0 {
				return fmt.Errorf("kafka: %s/%d has no leader", topic, partition)
			}
			leader, topicID = pd.Leader, td.ID
		}
		if pending == nil {
			pending = fetch(leader, topicID, from)
		}
		pg := <-pending
		pending = nil
		fp, next, err := pg.fp, pg.next, pg.err
		if err != nil {
			return err
		}
		switch {
		case errors.Is(fp.Err, kerr.NotLeaderForPartition), errors.Is(fp.Err, kerr.UnknownTopicID),
			errors.Is(fp.Err, kerr.FencedLeaderEpoch), errors.Is(fp.Err, kerr.UnknownTopicOrPartition),
			errors.Is(fp.Err, kerr.LeaderNotAvailable):
			if attempt++; attempt > 5 {
				return fmt.Errorf("kafka: fetch %s/%d@%d: %w", topic, partition, from, fp.Err)
			}
			leader = -1
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
			continue
		case errors.Is(fp.Err, kerr.OffsetOutOfRange) && belowLogStart(ctx, adm, topic, partition, from, fp.LogStartOffset):
			return fmt.Errorf("kafka: fetch %s/%d@%d: %w: %w", topic, partition, from, ErrBeforeLogStart, fp.Err)
		case fp.Err != nil:
			return fmt.Errorf("kafka: fetch %s/%d@%d: %w", topic, partition, from, fp.Err)
		}
		attempt = 0
		if next > from && next < to {
			pending = fetch(leader, topicID, next)
		}
		for _, rec := range fp.Records {
			if rec.Offset < from {
				continue
			}
			if rec.Offset >= to {
				return nil
			}
			more, err := fn(rec)
			if err != nil || !more {
				return err
			}
		}
		if next <= from {
			// Nothing readable yet at from, which is below `to` so it exists: it is past the
			// last stable offset, behind an open transaction. The fetch waited MaxWaitMillis
			// already; ask again until the transaction is decided.
			if err := ctx.Err(); err != nil {
				return err
			}
			continue
		}
		from = next
	}
	return nil
}

// fetchPage fetches one page of committed records at from, returning them and the offset
// after everything the page covered (records, aborted data and markers alike).
func fetchPage(ctx context.Context, cl *kgo.Client, leader int32, topic string, topicID [16]byte, partition int32, from int64) (kgo.FetchPartition, int64, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 200
	req.MinBytes = 1
	req.MaxBytes = scanPageBytes
	req.IsolationLevel = 1 // read_committed
	req.SessionEpoch = -1  // no fetch session
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, topicID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = partition, from, scanPageBytes
	rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl.Broker(int(leader)))
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		return kgo.FetchPartition{}, from, fmt.Errorf("kafka: fetch %s/%d@%d: %w", topic, partition, from, err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return kgo.FetchPartition{}, from, fmt.Errorf("kafka: fetch %s/%d@%d: malformed response", topic, partition, from)
	}
	fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		Offset: from, IsolationLevel: kgo.ReadCommitted(), Topic: topic, Partition: partition,
	}, &resp.Topics[0].Partitions[0], kgo.DefaultDecompressor(), nil)
	return fp, next, nil
}

// belowLogStart tells an offset removed from the log from one past its end, both answered
// "out of range": by the log start of the fetch response when it has one, else as listed.
func belowLogStart(ctx context.Context, adm *kadm.Client, topic string, partition int32, from, logStart int64) bool {
	if logStart > from {
		return true
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return false
	}
	start, ok := starts.Lookup(topic, partition)
	return ok && start.Err == nil && start.Offset > from
}
