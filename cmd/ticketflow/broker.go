package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/twmb/franz-go/pkg/kfake"
)

// brokerConfig is what `ticketflow broker` reads. Flags override the environment.
type brokerConfig struct {
	// Addrs lists one listen address per broker; when set it decides the broker count.
	Addrs []string `env:"TICKETFLOW_BROKER_ADDRS" envSeparator:","`
	// Host is where the brokers listen when Addrs is empty.
	Host string `env:"TICKETFLOW_BROKER_HOST" envDefault:"127.0.0.1"`
	// BasePort is the first broker's port when Addrs is empty; the others follow it.
	BasePort int `env:"TICKETFLOW_BROKER_PORT" envDefault:"9092"`
	// Count is the number of brokers when Addrs is empty.
	Count int `env:"TICKETFLOW_BROKER_COUNT" envDefault:"1"`
	// DataDir keeps topics, records, group offsets and producer ids across restarts.
	DataDir string `env:"TICKETFLOW_BROKER_DATA_DIR" envDefault:".data/broker"`
	// Persistence: written before acknowledged, flushed periodically or fsynced per batch.
	kafka.Persistence
	// Partitions is the default partition count of topics created without one
	// (KAFKA_PARTITIONS, shared with the services).
	Partitions int
}

func (c brokerConfig) listenAddrs() ([]string, error) {
	if len(c.Addrs) > 0 {
		for _, a := range c.Addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, fmt.Errorf("broker address %q: %w", a, err)
			}
		}
		return c.Addrs, nil
	}
	if c.Count < 1 || c.Count > 64 {
		return nil, fmt.Errorf("broker count %d: want 1 to 64", c.Count)
	}
	if c.BasePort < 1 || c.BasePort+c.Count-1 > 65535 {
		return nil, fmt.Errorf("broker base port %d: ports %d..%d are not valid", c.BasePort, c.BasePort, c.BasePort+c.Count-1)
	}
	addrs := make([]string, c.Count)
	for i := range addrs {
		addrs[i] = net.JoinHostPort(c.Host, strconv.Itoa(c.BasePort+i))
	}
	return addrs, nil
}

func parseBrokerFlags(args []string) (brokerConfig, error) {
	cfg, err := config.Load[brokerConfig]()
	if err != nil {
		return cfg, err
	}
	kcfg, err := config.Load[config.Kafka]()
	if err != nil {
		return cfg, err
	}
	cfg.Partitions = int(kcfg.Partitions)
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	addrs := fs.String("addrs", strings.Join(cfg.Addrs, ","), "comma-separated listen addresses, one per broker (TICKETFLOW_BROKER_ADDRS)")
	fs.StringVar(&cfg.Host, "host", cfg.Host, "host of the brokers when -addrs is empty (TICKETFLOW_BROKER_HOST)")
	fs.IntVar(&cfg.BasePort, "port", cfg.BasePort, "port of the first broker; the others follow (TICKETFLOW_BROKER_PORT)")
	fs.IntVar(&cfg.Count, "brokers", cfg.Count, "number of brokers when -addrs is empty (TICKETFLOW_BROKER_COUNT)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "where the log and state persist (TICKETFLOW_BROKER_DATA_DIR)")
	fs.BoolVar(&cfg.SyncWrites, "sync-writes", cfg.SyncWrites, "fsync every produced batch before acknowledging it (TICKETFLOW_BROKER_SYNC_WRITES)")
	fs.DurationVar(&cfg.FlushInterval, "flush-interval", cfg.FlushInterval, "without -sync-writes, how often the data dir is flushed to disk (TICKETFLOW_BROKER_FLUSH_INTERVAL)")
	fs.IntVar(&cfg.Partitions, "partitions", cfg.Partitions, "default partitions of auto-created topics (KAFKA_PARTITIONS)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("broker: unexpected argument %q", fs.Arg(0))
	}
	cfg.Addrs = nil
	if *addrs != "" {
		cfg.Addrs = strings.Split(*addrs, ",")
	}
	if cfg.DataDir == "" {
		return cfg, errors.New("broker: a data dir is required (TICKETFLOW_BROKER_DATA_DIR)")
	}
	if cfg.Partitions < 1 {
		return cfg, fmt.Errorf("broker: partitions %d: want at least 1", cfg.Partitions)
	}
	return cfg, nil
}

// startBrokers starts the kfake cluster: one broker per address, state under cfg.DataDir.
// Topics are not created here: every service creates the topic it needs (kafka.EnsureTopic),
// exactly as against a real cluster.
func startBrokers(cfg brokerConfig) (*kfake.Cluster, error) {
	addrs, err := cfg.listenAddrs()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("broker data dir %s: %w", cfg.DataDir, err)
	}
	// kfake asks for one listener per broker, in node order; ours go where the user said.
	var next atomic.Int32
	opts := []kfake.Opt{
		kfake.NumBrokers(len(addrs)),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			i := int(next.Add(1)) - 1
			if i >= len(addrs) {
				return nil, fmt.Errorf("broker: no address for broker %d", i)
			}
			return net.Listen(network, addrs[i])
		}),
	}
	c, err := kfake.NewCluster(append(opts, cfg.Persistence.Options(cfg.DataDir)...)...)
	if err != nil {
		return nil, fmt.Errorf("broker on %s: %w", strings.Join(addrs, ","), err)
	}
	return c, nil
}

func runBroker(args []string) error {
	cfg, err := parseBrokerFlags(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := startBrokers(cfg)
	if err != nil {
		return err
	}
	seeds := strings.Join(c.ListenAddrs(), ",")
	stopFlush := cfg.FlushEvery(cfg.DataDir)
	slog.Info("broker started", "addrs", seeds, "data", cfg.DataDir, "sync_writes", cfg.SyncWrites, "flush_interval", cfg.FlushInterval)
	// The one line scripts parse: paste it into the services' environment.
	fmt.Printf("KAFKA_BROKERS=%s\n", seeds)
	<-ctx.Done()
	slog.Info("broker stopping: flushing persisted state")
	stopFlush()
	c.Close()
	return nil
}
