package kafka

import (
	"log/slog"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Persistence is how the embedded broker (dev and `ticketflow broker`) makes what it
// acknowledges durable.
//
// By default every batch is written to its segment file before the produce is acknowledged
// and the file system is flushed every FlushInterval, like Apache Kafka's default (which
// never fsyncs per write either): an acknowledged event survives any crash of the broker
// process, SIGKILL included, because it is in the kernel's page cache; only a crash of the
// machine itself within FlushInterval of the write can lose it. SyncWrites fsyncs every
// batch instead, closing that window at the cost of two fsyncs on the broker's single
// request loop per produce — the largest part of an event's latency to the browser.
type Persistence struct {
	// SyncWrites fsyncs every produced batch before acknowledging it.
	SyncWrites bool `env:"TICKETFLOW_BROKER_SYNC_WRITES" envDefault:"false"`
	// FlushInterval is how often the data dir's file system is flushed to disk when
	// SyncWrites is off (0: leave it to the kernel's writeback).
	FlushInterval time.Duration `env:"TICKETFLOW_BROKER_FLUSH_INTERVAL" envDefault:"1s"`
}

// Options are the kfake options persisting under dataDir.
func (p Persistence) Options(dataDir string) []kfake.Opt {
	opts := []kfake.Opt{kfake.DataDir(dataDir)}
	if p.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	return opts
}

// FlushEvery flushes dataDir's file system every p.FlushInterval until stop is called.
func (p Persistence) FlushEvery(dataDir string) (stop func()) {
	if p.SyncWrites || p.FlushInterval <= 0 {
		return func() {}
	}
	dir, err := os.Open(dataDir)
	if err != nil {
		slog.Warn("broker: the data dir cannot be flushed periodically; acknowledged writes reach the disk at the kernel's pace", "dir", dataDir, "err", err)
		return func() {}
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		defer dir.Close()
		t := time.NewTicker(p.FlushInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := syncFS(dir); err != nil {
					slog.Warn("broker: flush of the data dir failed", "dir", dataDir, "err", err)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}
