package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/proctest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startBrokerProcess runs `ticketflow broker` and returns its seed addresses, read from the
// KAFKA_BROKERS= line it prints.
func startBrokerProcess(t *testing.T, args ...string) (*exec.Cmd, []string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"broker"}, args...)...)
	cmd.Env = append(cmd.Environ(), "TICKETFLOW_LOG_LEVEL=warn")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "KAFKA_BROKERS="); ok {
				lines <- s
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case s := <-lines:
		return cmd, strings.Split(s, ",")
	case <-time.After(30 * time.Second):
		t.Fatal("ticketflow broker printed no KAFKA_BROKERS line")
	}
	return nil, nil
}

// TestBrokerKeepsTheLogAcrossRestarts: `ticketflow broker` with 3 brokers on chosen ports;
// a topic created by a client (as the services do) and records acknowledged with acks=all
// are all there after a SIGTERM and a restart on the same data dir.
func TestBrokerKeepsTheLogAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	addrs := strings.Join([]string{proctest.FreeAddr(t), proctest.FreeAddr(t), proctest.FreeAddr(t)}, ",")
	cmd, seeds := startBrokerProcess(t, "-addrs", addrs, "-data-dir", dir, "-partitions", "3")
	if strings.Join(seeds, ",") != addrs {
		t.Fatalf("broker listens on %v, want %s", seeds, addrs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("persisted"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, -1, nil, "persisted"); err != nil {
		t.Fatal(err)
	}
	const n = 30
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte{byte(i)}, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	cl.Close()

	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	proctest.Returned(t, done, 20*time.Second, "broker on SIGTERM")

	_, seeds = startBrokerProcess(t, "-addrs", addrs, "-data-dir", dir)
	cl, err = kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("persisted"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("after restart only %d of %d records came back", got, n)
		}
		got += fs.NumRecords()
	}
	if got != n {
		t.Fatalf("after restart %d records, want %d", got, n)
	}
}

func TestBrokerFlagsValidate(t *testing.T) {
	for _, args := range [][]string{
		{"-brokers", "0"},
		{"-port", "65535", "-brokers", "2"},
		{"-addrs", "nohostport"},
		{"-partitions", "0"},
		{"extra"},
	} {
		cfg, err := parseBrokerFlags(args)
		if err == nil {
			_, err = cfg.listenAddrs()
		}
		if err == nil {
			t.Errorf("broker %v: accepted, want an error", args)
		}
	}
	cfg, err := parseBrokerFlags([]string{"-brokers", "3", "-port", "19092"})
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := cfg.listenAddrs()
	if err != nil || strings.Join(addrs, ",") != "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094" {
		t.Fatalf("addrs %v, %v", addrs, err)
	}
}

// TestBrokerLosesNothingAcknowledgedOnSIGKILL: with the default persistence (no fsync per
// batch, and a flush interval far longer than the test, so only the page cache holds the
// writes) the broker is SIGKILLed while producers are mid-stream; after a restart on the
// same data dir every record it had acknowledged is there.
func TestBrokerLosesNothingAcknowledgedOnSIGKILL(t *testing.T) {
	dir := t.TempDir()
	addr := proctest.FreeAddr(t)
	cmd, seeds := startBrokerProcess(t, "-addrs", addr, "-data-dir", dir, "-partitions", "3", "-flush-interval", "1h")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("acked"),
		kgo.RecordRetries(0), kgo.RetryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, -1, nil, "acked"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	produceCtx, stopProducing := context.WithCancel(ctx)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; produceCtx.Err() == nil; i++ {
				v := fmt.Sprintf("w%d-%d", w, i)
				cl.Produce(produceCtx, &kgo.Record{Key: []byte(v), Value: []byte(v)}, func(r *kgo.Record, err error) {
					if err == nil {
						mu.Lock()
						acked[string(r.Value)] = true
						mu.Unlock()
					}
				})
				time.Sleep(time.Millisecond)
			}
		}()
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 2000 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("only %d records acknowledged", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // mid-stream: batches are in flight
	_ = cmd.Wait()
	stopProducing()
	wg.Wait()
	cl.Close() // fails whatever was not acknowledged
	mu.Lock()
	want := len(acked)
	mu.Unlock()

	_, seeds = startBrokerProcess(t, "-addrs", addr, "-data-dir", dir)
	rd, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("acked"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	end, err := kadm.NewClient(rd).ListEndOffsets(ctx, "acked")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	end.Each(func(o kadm.ListedOffset) { total += o.Offset })
	seen := map[string]bool{}
	for read := int64(0); read < total; {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of the %d records after the restart", read, total)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true; read++ })
	}
	lost := 0
	for v := range acked {
		if !seen[v] {
			lost++
		}
	}
	t.Logf("%d records acknowledged before the SIGKILL, %d in the log after the restart", want, len(seen))
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records are missing after the SIGKILL", lost, want)
	}
}
