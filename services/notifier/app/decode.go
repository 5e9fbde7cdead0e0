package app

import (
	"context"
	"runtime"
)

// decodeChunk is how many records one decoder takes at a time.
const decodeChunk = 128

// decodeInOrder is a long replay's pipeline. Decoding records is most of its cost, so read's
// records go in chunks to one decoder per core, and the calling goroutine writes the decoded
// items that keep accepts, in log order. It returns how many items were written.
func decodeInOrder(ctx context.Context, read func(context.Context, func(Record) error) error,
	keep func(*item) bool, write func(*item) error) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type chunk struct {
		recs []Record
		out  chan []*item
	}
	work := make(chan chunk, 8)
	order := make(chan chan []*item, 8)
	for range max(runtime.GOMAXPROCS(0), 1) {
		go func() {
			for c := range work {
				items := make([]*item, 0, len(c.recs))
				for _, rec := range c.recs {
					if it, ok := decodeRecord(rec); ok && keep(it) {
						items = append(items, it)
					}
				}
				c.out <- items // buffered: never blocks
			}
		}()
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(order)
		defer close(work)
		recs := make([]Record, 0, decodeChunk)
		flush := func() error {
			c := chunk{recs: recs, out: make(chan []*item, 1)}
			select {
			case order <- c.out:
			case <-ctx.Done():
				return ctx.Err()
			}
			work <- c
			recs = make([]Record, 0, decodeChunk)
			return nil
		}
		err := read(ctx, func(rec Record) error {
			if recs = append(recs, rec); len(recs) == decodeChunk {
				return flush()
			}
			return nil
		})
		if err == nil && len(recs) > 0 {
			err = flush()
		}
		readErr <- err
	}()
	written := 0
	for out := range order {
		for _, it := range <-out {
			if err := write(it); err != nil {
				cancel()
				for range order { // let the reader stop
				}
				return written, err
			}
			written++
		}
	}
	return written, <-readErr
}
