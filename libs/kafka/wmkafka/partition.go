package wmkafka

import (
	"context"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A partition's queue of fetched, not yet delivered records is bounded: past pauseAt the
// partition's fetching is paused (other partitions keep flowing, and the poll loop never
// blocks, so rebalances are never held up by a slow handler), and it resumes once the queue
// is down to resumeAt, early enough for the next fetch to arrive before the queue runs dry.
const (
	pauseAt  = 512
	resumeAt = 128
)

// partitionConsumer delivers one partition's records, one at a time, in offset order.
type partitionConsumer struct {
	sub       *subscription
	partition int32
	quit      chan struct{} // closed to stop it (revoke, lost, shutdown)
	done      chan struct{} // closed when run returns
	wake      chan struct{} // capacity 1: the queue grew

	mu     sync.Mutex
	queue  []*kgo.Record
	paused bool
}

// push queues fetched records (called by the poll loop only).
func (pc *partitionConsumer) push(recs []*kgo.Record) {
	pc.mu.Lock()
	pc.queue = append(pc.queue, recs...)
	if !pc.paused && len(pc.queue) >= pauseAt {
		pc.paused = true
		// Records of this partition already buffered in the client are dropped by the next
		// poll and fetched again after the resume: no gap, no duplicate.
		pc.sub.cl.PauseFetchPartitions(pc.topicPartition())
	}
	pc.mu.Unlock()
	select {
	case pc.wake <- struct{}{}:
	default:
	}
}

func (pc *partitionConsumer) unpause() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.paused {
		pc.paused = false
		pc.sub.cl.ResumeFetchPartitions(pc.topicPartition())
	}
}

func (pc *partitionConsumer) topicPartition() map[string][]int32 {
	return map[string][]int32{pc.sub.topic: {pc.partition}}
}

// next waits for the next queued record; false means stop.
func (pc *partitionConsumer) next() (*kgo.Record, bool) {
	for {
		pc.mu.Lock()
		if len(pc.queue) > 0 {
			rec := pc.queue[0]
			pc.queue[0] = nil
			pc.queue = pc.queue[1:]
			if len(pc.queue) == 0 {
				pc.queue = nil // let the drained backing array go
			}
			if pc.paused && len(pc.queue) <= resumeAt {
				pc.paused = false
				pc.sub.cl.ResumeFetchPartitions(pc.topicPartition())
			}
			pc.mu.Unlock()
			return rec, true
		}
		pc.mu.Unlock()
		select {
		case <-pc.wake:
		case <-pc.quit:
			return nil, false
		case <-pc.sub.ctx.Done():
			return nil, false
		}
	}
}

func (pc *partitionConsumer) run() {
	defer close(pc.done)
	for {
		rec, ok := pc.next()
		if !ok || !pc.deliver(rec) {
			return
		}
	}
}

// deliver hands rec out until it is acked; false means the consumer was stopped first (the
// record is not marked, so it is delivered again by whoever consumes the partition next).
func (pc *partitionConsumer) deliver(rec *kgo.Record) bool {
	sub := pc.sub
	for {
		// A fresh message per attempt: a Watermill message is acked or nacked only once.
		msg, err := sub.unmarshal.Unmarshal(rec)
		if err != nil {
			// It will never unmarshal: skipping (and committing past) it is the only way
			// not to stall the partition forever.
			sub.log.Error("skipping record that cannot be unmarshaled",
				"partition", rec.Partition, "offset", rec.Offset, "err", err)
			sub.mark(rec)
			return true
		}
		// The handler continues the trace of whoever appended the record.
		ctx, cancel := context.WithCancel(kafka.RecordContext(sub.ctx, rec))
		msg.SetContext(ctx)

		select {
		case sub.out <- msg:
		case <-pc.quit:
			cancel()
			return false
		case <-sub.ctx.Done():
			cancel()
			return false
		}

		select {
		case <-msg.Acked():
			cancel()
			sub.mark(rec)
			return true
		case <-msg.Nacked():
			cancel()
		case <-pc.quit:
			cancel()
			return pc.ackedAnyway(msg, rec)
		case <-sub.ctx.Done():
			cancel()
			return pc.ackedAnyway(msg, rec)
		}

		t := time.NewTimer(sub.nackSleep)
		select {
		case <-t.C:
		case <-pc.quit:
			t.Stop()
			return false
		case <-sub.ctx.Done():
			t.Stop()
			return false
		}
	}
}

// ackedAnyway keeps an ack that raced with a stop: marking it now still lands before the
// revoke's or shutdown's commit, which waits for this goroutine.
func (pc *partitionConsumer) ackedAnyway(msg *message.Message, rec *kgo.Record) bool {
	select {
	case <-msg.Acked():
		pc.sub.mark(rec)
	default:
	}
	return false
}
