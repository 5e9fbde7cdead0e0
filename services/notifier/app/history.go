package app

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errHistoryGone means the requested offset is below the partition's log start: retention or
// a DeleteRecords removed it, and no source can replay it exactly any more.
var errHistoryGone = errors.New("history no longer in the event log")

// logReader reads any range of a partition straight from Kafka with plain Fetch requests to
// the partition leader, so replay needs no consumer per client and no consumer group. Kafka
// is the source of truth: the projector's ticket_events may lag, the log cannot.
type logReader struct {
	cl    *kgo.Client
	adm   *kadm.Client
	topic string

	mu      sync.Mutex
	topicID [16]byte
	leaders map[int32]int32
}

func newLogReader(cl *kgo.Client, topic string) *logReader {
	return &logReader{cl: cl, adm: kadm.NewClient(cl), topic: topic}
}

// fetchPageBytes bounds one Fetch response: replay holds at most one page in memory.
const fetchPageBytes = 1 << 20

func (r *logReader) refresh(ctx context.Context) error {
	md, err := r.adm.Metadata(ctx, r.topic)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	td, ok := md.Topics[r.topic]
	if !ok || td.Err != nil {
		return fmt.Errorf("topic %q: %v", r.topic, td.Err)
	}
	leaders := make(map[int32]int32, len(td.Partitions))
	for p, pd := range td.Partitions {
		leaders[p] = pd.Leader
	}
	r.mu.Lock()
	r.topicID, r.leaders = td.ID, leaders
	r.mu.Unlock()
	return nil
}

func (r *logReader) leader(ctx context.Context, p int32) (int32, [16]byte, error) {
	r.mu.Lock()
	l, ok := r.leaders[p]
	id := r.topicID
	r.mu.Unlock()
	if ok && l >= 0 {
		return l, id, nil
	}
	if err := r.refresh(ctx); err != nil {
		return 0, id, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok = r.leaders[p]
	if !ok || l < 0 {
		return 0, r.topicID, fmt.Errorf("partition %d has no leader", p)
	}
	return l, r.topicID, nil
}

// fetch returns the records of one page of partition p starting at offset from.
func (r *logReader) fetch(ctx context.Context, p int32, from int64) (kgo.FetchPartition, error) {
	for attempt := 0; ; attempt++ {
		leader, id, err := r.leader(ctx, p)
		if err != nil {
			return kgo.FetchPartition{}, err
		}
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.MaxWaitMillis = 0
		req.MinBytes = 0
		req.MaxBytes = fetchPageBytes
		req.SessionEpoch = -1
		req.IsolationLevel = 1 // read_committed: a fenced processor's aborted appends are not history
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = r.topic, id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, from, fetchPageBytes
		rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, r.cl.Broker(int(leader)))
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err != nil {
			return kgo.FetchPartition{}, fmt.Errorf("fetch %s/%d@%d: %w", r.topic, p, from, err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return kgo.FetchPartition{}, fmt.Errorf("fetch %s/%d@%d: malformed response", r.topic, p, from)
		}
		part := &resp.Topics[0].Partitions[0]
		// Markers are kept (fn skips what does not decode): they move `from` past the end of
		// each transaction, aborted ranges included, so a page never looks empty mid-log.
		fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: from, Topic: r.topic, Partition: p,
			IsolationLevel: kgo.ReadCommitted(), KeepControlRecords: true}, part, kgo.DefaultDecompressor(), nil)
		switch {
		case errors.Is(fp.Err, kerr.OffsetOutOfRange):
			if fp.LogStartOffset > from || part.LogStartOffset > from {
				return fp, errHistoryGone
			}
			return fp, fmt.Errorf("fetch %s/%d@%d: %w", r.topic, p, from, fp.Err)
		case (errors.Is(fp.Err, kerr.NotLeaderForPartition) || errors.Is(fp.Err, kerr.UnknownTopicID) ||
			errors.Is(fp.Err, kerr.FencedLeaderEpoch) || errors.Is(fp.Err, kerr.UnknownTopicOrPartition)) && attempt < 3:
			r.mu.Lock()
			r.leaders = nil
			r.mu.Unlock()
			continue
		case fp.Err != nil:
			return fp, fmt.Errorf("fetch %s/%d@%d: %w", r.topic, p, from, fp.Err)
		}
		if from < fp.LogStartOffset {
			return fp, errHistoryGone
		}
		return fp, nil
	}
}

// read calls fn for each record of partition p with from <= offset <= to, in log order.
// It returns errHistoryGone when from is below the log start. The next page is fetched while
// fn works through the current one, so a long replay overlaps broker I/O with encoding.
func (r *logReader) read(ctx context.Context, p int32, from, to int64, fn func(*kgo.Record) error) error {
	type page struct {
		fp  kgo.FetchPartition
		err error
	}
	fetchAsync := func(off int64) <-chan page {
		ch := make(chan page, 1) // buffered: an abandoned prefetch never blocks its goroutine
		go func() {
			fp, err := r.fetch(ctx, p, off)
			ch <- page{fp, err}
		}()
		return ch
	}
	next := fetchAsync(from)
	for from <= to {
		pg := <-next
		if pg.err != nil {
			return pg.err
		}
		fp := pg.fp
		next = nil
		if n := len(fp.Records); n > 0 && fp.Records[n-1].Offset < to {
			next = fetchAsync(fp.Records[n-1].Offset + 1)
		}
		progressed := false
		for _, rec := range fp.Records {
			if rec.Offset < from {
				continue
			}
			if rec.Offset > to {
				return nil
			}
			if err := fn(rec); err != nil {
				return err
			}
			from, progressed = rec.Offset+1, true
		}
		if !progressed {
			if fp.HighWatermark > from {
				// Only control records or aborted data in this page: step over it.
				from = max(from+1, fp.HighWatermark-int64(len(fp.Records)))
				next = fetchAsync(from)
				continue
			}
			return fmt.Errorf("fetch %s/%d: log ends at %d before %d", r.topic, p, fp.HighWatermark, to)
		}
		if next == nil && from <= to {
			next = fetchAsync(from)
		}
	}
	return nil
}

// ends returns the last stable offset of every partition: the end of what read_committed
// consumers can read (past it, records of open transactions wait for their outcome).
func (r *logReader) ends(ctx context.Context) (map[int32]int64, error) {
	return r.listed(ctx, r.adm.ListCommittedOffsets)
}

// starts returns the log start offset of every partition.
func (r *logReader) starts(ctx context.Context) (map[int32]int64, error) {
	return r.listed(ctx, r.adm.ListStartOffsets)
}

func (r *logReader) listed(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error)) (map[int32]int64, error) {
	lo, err := list(ctx, r.topic)
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
