package kafka

import (
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is a single-node Kafka-protocol broker (franz-go's kfake) for `ticketflow dev`
// and integration tests. With a data dir it persists topics, records and group offsets, so a
// restart keeps every event. Any Kafka client (kcat, kafka-console-consumer) can connect.
type Embedded struct {
	cluster   *kfake.Cluster
	stopFlush func()
}

// StartEmbedded listens on addr ("127.0.0.1:0" picks a port). dataDir "" keeps data in
// memory; otherwise p says how acknowledged writes are made durable.
func StartEmbedded(addr, dataDir string, partitions int, p Persistence) (*Embedded, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(partitions),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
	}
	if dataDir != "" {
		opts = append(opts, p.Options(dataDir)...)
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka on %s: %w", addr, err)
	}
	e := &Embedded{cluster: c, stopFlush: func() {}}
	if dataDir != "" {
		e.stopFlush = p.FlushEvery(dataDir)
	}
	return e, nil
}

// Addrs are the broker addresses to use as seed brokers.
func (e *Embedded) Addrs() []string { return e.cluster.ListenAddrs() }

// Close stops the broker, flushing persisted state.
func (e *Embedded) Close() {
	e.stopFlush()
	e.cluster.Close()
}
