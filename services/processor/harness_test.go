package main

// Process-level tests: the processor binary as a child process against the embedded Kafka
// broker (over TCP) and a real PostgreSQL database.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
	"github.com/twmb/franz-go/pkg/kgo"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ticketflow-processor-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "processor")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build processor:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is the broker, database and producer one test shares with its processor processes.
type env struct {
	t        *testing.T
	kafka    config.Kafka
	dsn      string
	producer *kafka.Producer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	emb, err := kafka.StartEmbedded("127.0.0.1:0", "", 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	kcfg := config.Kafka{Brokers: emb.Addrs(), Topic: "ticket-events", Partitions: 4, ReplicationFactor: 1}
	cl, err := kafka.NewClient(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := kafka.EnsureTopic(ctx, cl, kcfg); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, kafka: kcfg, dsn: pgtest.NewDatabase(t), producer: kafka.NewProducer(cl, kcfg.Topic)}
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

// child is the processor binary run as a child process; its output accumulates in log
// across restarts.
type child struct {
	t    *testing.T
	env  []string
	mu   sync.Mutex
	log  bytes.Buffer
	cmd  *exec.Cmd
	done chan struct{}
	http string
}

func (e *env) processor(extraEnv ...string) *child {
	p := &child{t: e.t}
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

func (p *child) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

func (p *child) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// start runs the binary and waits for /readyz (router consuming).
func (p *child) start() {
	p.t.Helper()
	p.http = freeAddr(p.t)
	p.cmd = exec.Command(binary)
	p.cmd.Env = append(p.env, "TICKETFLOW_HTTP_ADDR="+p.http)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan struct{})
	p.done = done
	cmd := p.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + p.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			p.t.Fatalf("processor exited early:\n%s", p.output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	p.t.Fatalf("processor not ready in time:\n%s", p.output())
}

// stop signals the process and waits for it (SIGKILL after 20 s).
func (p *child) stop(sig syscall.Signal) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
