package main

// Process-level tests: the processor binary as a child process against the embedded Kafka
// broker (over TCP) and a real PostgreSQL database.

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
	"github.com/ticketflow/ticketflow/libs/proctest"
	"github.com/twmb/franz-go/pkg/kgo"
)

var binary string

func TestMain(m *testing.M) { proctest.Main(m, &binary, "processor", ".") }

// env is the broker, database and producer one test shares with its processor processes.
type env struct {
	t        *testing.T
	kafka    config.Kafka
	dsn      string
	producer *kafka.Producer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	b := kafkatest.Start(t, 4)
	return &env{t: t, kafka: b.Config, dsn: pgtest.NewDatabase(t), producer: b.Producer}
}

func (e *env) append(envs ...events.Envelope) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := e.producer.Append(ctx, envs...); err != nil {
		e.t.Fatalf("append: %v", err)
	}
}

// readAll returns every committed event of the topic, in partition order, up to the current
// end (transaction markers and aborted appends of fenced processors are not events).
func (e *env) readAll() []events.Event {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kafka.NewClient(e.kafka)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var out []events.Event
	for p := int32(0); p < e.kafka.Partitions; p++ {
		err := kafka.ScanPartition(ctx, cl, e.kafka.Topic, p, 0, kafka.ScanToEnd, func(rec *kgo.Record) (bool, error) {
			ev, err := kafka.Event(rec)
			if err != nil {
				e.t.Errorf("undecodable record %d/%d: %v", rec.Partition, rec.Offset, err)
			} else {
				out = append(out, ev)
			}
			return true, nil
		})
		if err != nil {
			e.t.Fatalf("reading partition %d: %v", p, err)
		}
	}
	return out
}

// tail streams every event of the topic (from the start) until ctx ends.
func (e *env) tail(ctx context.Context) <-chan events.Event {
	e.t.Helper()
	cl, err := kafka.NewClient(e.kafka, kgo.ConsumeTopics(e.kafka.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	out := make(chan events.Event, 1024)
	go func() {
		defer close(out)
		defer cl.Close()
		for {
			fetches := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			var evs []events.Event
			fetches.EachRecord(func(rec *kgo.Record) {
				if ev, err := kafka.Event(rec); err == nil {
					evs = append(evs, ev)
				}
			})
			for _, ev := range evs {
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// child is the processor binary run as a child process; its output accumulates across
// restarts.
type child struct {
	proctest.Process
	t    *testing.T
	env  []string
	http string
}

func (e *env) processor(extraEnv ...string) *child {
	p := &child{t: e.t, Process: proctest.Process{Name: "processor", Path: binary}}
	p.env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"KAFKA_BROKERS=" + e.kafka.Brokers[0],
		"KAFKA_TOPIC=" + e.kafka.Topic,
		"KAFKA_PARTITIONS=4",
		"KAFKA_REPLICATION_FACTOR=1",
		"DATABASE_URL=" + e.dsn,
		"TICKETFLOW_INSTANCE_ID=processor-under-test",
	}, extraEnv...)
	e.t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if e.t.Failed() {
			e.t.Logf("processor output:\n%s", p.output())
		}
	})
	return p
}

func (p *child) output() string { return p.Output() }

// start runs the binary and waits for /readyz (router consuming).
func (p *child) start() {
	p.t.Helper()
	p.http = proctest.FreeAddr(p.t)
	p.Env = append(p.env[:len(p.env):len(p.env)], "TICKETFLOW_HTTP_ADDR="+p.http)
	p.Start(p.t, "http://"+p.http+"/readyz")
}

// stop signals the process and waits for it (SIGKILL after 20 s).
func (p *child) stop(sig syscall.Signal) { p.Stop(sig, 20*time.Second) }
