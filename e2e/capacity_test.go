package e2e

// TestCapacity measures the per-core rates the capacity model in the README is built on:
// runs per processor CPU-second, events per projector CPU-second, WebSocket deliveries per
// notifier CPU-second and the memory an idle connection costs a notifier. No faults. It runs
// only with TICKETFLOW_CAPACITY=1 (numbers, not pass/fail; ~1-2 minutes).
//
// A fourth notifier replica holds no connection at all: its CPU time and memory are what
// reading the whole topic costs every replica (the question of partition-affine notifiers).

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/ticketflow/ticketflow/e2e/topology"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
)

// procCPU is the user+system CPU time of a process, from /proc (Linux).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ is 100 on Linux
}

// procRSS is the resident memory of a process in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func kindCPU(top *topology.Topology, k topology.Kind) time.Duration {
	var d time.Duration
	for _, in := range top.Instances(k) {
		d += procCPU(in.Pid())
	}
	return d
}

func TestCapacity(t *testing.T) {
	if os.Getenv("TICKETFLOW_CAPACITY") != "1" {
		t.Skip("set TICKETFLOW_CAPACITY=1 to measure the capacity model's rates")
	}
	const tickets, runs, idleConns, watchers = 60, 400, 3000, 60
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	_, work := topology.BuildT(t, ctx)
	pg := topology.StartPostgresT(t, ctx, filepath.Join(work, "pg"))
	shape := topology.DefaultShape
	shape.Notifier++ // the last one is the reader without clients
	top := topology.StartT(t, ctx, shape, topology.Options{
		BinDir: filepath.Join(work, "bin"), Dir: filepath.Join(work, "run"), DatabaseURL: pg.URL("ticketflow_capacity"),
		JWTSecret: chaosSecret, Partitions: 6,
		Env: []string{"TICKETFLOW_EXECUTOR=simulated", "TICKETFLOW_SIM_STEP_DELAY=20ms", "TICKETFLOW_SIM_LOGS_PER_STEP=2",
			"MAX_ITERATIONS=1000", "TICKETFLOW_WS_CONNECT_RATE=100000", "TICKETFLOW_WS_CONNECT_BURST=100000", "TICKETFLOW_LOG_LEVEL=warn",
			// One user on one address holds every connection: the per-user and per-address caps are lifted.
			fmt.Sprintf("TICKETFLOW_WS_MAX_CONNS_PER_USER=%d", 2*idleConns), fmt.Sprintf("TICKETFLOW_WS_MAX_CONNS_PER_IP=%d", 2*idleConns)},
	})
	v, _ := auth.NewVerifier(chaosSecret)
	token, _ := v.Issue("capacity", auth.RoleUser, time.Hour)
	a := newAPI(t, top.URLs(topology.Command), token)
	rng := rand.New(rand.NewPCG(1, 2))
	led := newLedger()
	var ids []string
	for i := range tickets {
		ans := a.post(ctx, rng, i%2, "/api/tickets", map[string]any{"title": fmt.Sprintf("capacity %d", i)}, uuid.NewString())
		var tv ticketView
		if ans.status != 201 || jsonUnmarshal(ans.body, &tv) != nil {
			t.Fatalf("create ticket: %d %s", ans.status, ans.body)
		}
		ids = append(ids, tv.ID)
	}

	// Idle memory: RSS of the notifiers before and after idleConns connections that watch a
	// ticket and receive nothing.
	allNotifiers := top.Instances(topology.Notifier)
	notifiers, reader := allNotifiers[:len(allNotifiers)-1], allNotifiers[len(allNotifiers)-1]
	rssBefore := int64(0)
	for _, in := range notifiers {
		rssBefore += procRSS(in.Pid())
	}
	var idle []*websocket.Conn
	var idleMsgs atomic.Int64
	for i := range idleConns {
		in := notifiers[i%len(notifiers)]
		c, _, err := websocket.Dial(ctx, in.WSURL()+"/ws/tickets/"+ids[i%len(ids)]+"?access_token="+token, nil)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		idle = append(idle, c)
		go func() { // idle until the runs start, then it receives its ticket's events too
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
				idleMsgs.Add(1)
			}
		}()
	}
	time.Sleep(3 * time.Second)
	rssAfter := int64(0)
	for _, in := range notifiers {
		rssAfter += procRSS(in.Pid())
	}

	// Throughput: runs as fast as the workers get them through, watched by some clients.
	wctx, stop := context.WithCancel(ctx)
	var clients []*wsClient
	var cwg sync.WaitGroup
	urls := []string{}
	for _, in := range notifiers {
		urls = append(urls, in.WSURL())
	}
	for i := range watchers {
		c := &wsClient{id: i, ticketID: ids[i%len(ids)], urls: urls, token: token}
		c.replica.Store(int32(i % len(urls)))
		clients = append(clients, c)
		cwg.Add(1)
		go func() { defer cwg.Done(); c.run(wctx, rand.New(rand.NewPCG(3, uint64(i)))) }()
	}
	time.Sleep(time.Second)
	closed := make(chan struct{})
	close(closed)
	w := &workload{api: a, led: led, pool: make(chan string, len(ids)), target: runs, faultsDone: closed}
	for _, id := range ids {
		w.pool <- id
	}
	cpu0 := map[topology.Kind]time.Duration{}
	for _, k := range topology.Services {
		cpu0[k] = kindCPU(top, k)
	}
	readerCPU0, readerRSS0 := procCPU(reader.Pid()), procRSS(reader.Pid())
	calls0 := a.calls.Load()
	idle0 := idleMsgs.Load()
	began := time.Now()
	var wwg sync.WaitGroup
	for i := range 30 {
		wwg.Add(1)
		go func() { defer wwg.Done(); w.worker(wctx, rand.New(rand.NewPCG(4, uint64(i)))) }()
	}
	wwg.Wait()
	elapsed := time.Since(began)
	time.Sleep(2 * time.Second) // deliveries and projection of the last runs
	cpu := map[topology.Kind]time.Duration{}
	for _, k := range topology.Services {
		cpu[k] = kindCPU(top, k) - cpu0[k]
	}
	readerCPU, readerRSS := procCPU(reader.Pid())-readerCPU0, procRSS(reader.Pid())
	cpu[topology.Notifier] -= readerCPU // the deliveries' replicas only
	stop()
	cwg.Wait()
	for _, c := range clients {
		if bad := c.Invalid(); len(bad) > 0 {
			t.Errorf("contract: WebSocket client %d received messages api/asyncapi.yaml does not allow: %v", c.id, bad)
		}
	}
	for _, c := range idle {
		c.CloseNow()
	}
	recs, err := readLog(ctx, config.Kafka{Brokers: top.Brokers, Topic: "ticket-events"})
	if err != nil {
		t.Fatal(err)
	}
	burst := readTopicBurst(t, ctx, top, reader, led)
	deliveries := int(idleMsgs.Load() - idle0)
	for _, c := range clients {
		deliveries += len(c.got)
	}
	n := led.acceptedCount()
	rate := func(x int, d time.Duration) float64 {
		if d <= 0 {
			return 0
		}
		return float64(x) / d.Seconds()
	}
	t.Logf("\ncapacity (2 cores shared by everything, simulated executor at 20 ms/step):\n"+
		"  %d runs in %s (%.1f runs/s), %d events in the log (%.0f events/run)\n"+
		"  CPU seconds: command %.1f, processor %.1f, projector %.1f, notifier %.1f\n"+
		"  runs per processor CPU-second     %8.1f\n"+
		"  events per projector CPU-second   %8.0f\n"+
		"  deliveries per notifier CPU-second %7.0f  (%d deliveries to %d clients; every replica also reads the whole topic)\n"+
		"  HTTP requests per command CPU-second %5.0f  (starts, reviews and status polls)\n"+
		"  idle notifier memory: %d connections cost %.1f MiB (%.1f KiB each)\n"+
		"  a replica without clients reading the whole topic: %.2f CPU-s for %d events (%.1f µs/event), RSS %.1f → %.1f MiB\n"+
		"  the same replica reading a burst of %d log events at %.0f events/s: %.1f µs/event above its idle rate (%.3f cores per 1,000 events/s)",
		n, elapsed.Round(time.Millisecond), rate(n, elapsed), len(recs), float64(len(recs))/float64(max(n, 1)),
		cpu[topology.Command].Seconds(), cpu[topology.Processor].Seconds(), cpu[topology.Projector].Seconds(), cpu[topology.Notifier].Seconds(),
		rate(n, cpu[topology.Processor]), rate(len(recs), cpu[topology.Projector]), rate(deliveries, cpu[topology.Notifier]),
		deliveries, len(clients)+idleConns, rate(int(a.calls.Load()-calls0), cpu[topology.Command]),
		idleConns, float64(rssAfter-rssBefore)/(1<<20), float64(rssAfter-rssBefore)/1024/float64(idleConns),
		readerCPU.Seconds(), len(recs), float64(readerCPU.Microseconds())/float64(max(len(recs), 1)),
		float64(readerRSS0)/(1<<20), float64(readerRSS)/(1<<20),
		burst.events, burst.rate, burst.perEvent, burst.perEvent/1000)
}

type burstReading struct {
	events   int
	rate     float64 // events/s the reader kept up with
	perEvent float64 // µs of the reader's CPU per event, its idle rate subtracted
}

// readTopicBurst appends log events for the finished runs as fast as an idempotent producer
// goes (the rate of a large deployment, not of this machine's workload), with every client
// gone, and measures the CPU the replica without clients spends reading them: at a low rate
// each fetch carries a record or two and the per-fetch cost dominates; at scale fetches are
// full batches.
func readTopicBurst(t *testing.T, ctx context.Context, top *topology.Topology, reader *topology.Instance, led *ledger) burstReading {
	const burst = 60_000
	cl, err := kafka.NewClient(config.Kafka{Brokers: top.Brokers, Topic: "ticket-events"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	prod := kafka.NewProducer(cl, "ticket-events")
	var runs [][2]string
	led.mu.Lock()
	for run, ticket := range led.accepted {
		runs = append(runs, [2]string{run, ticket})
	}
	led.mu.Unlock()
	if len(runs) == 0 {
		t.Fatal("no run to log for")
	}
	consumed := func() float64 {
		return scrapeCounter(t, ctx, reader.URL()+"/metrics", "ticketflow_notifier_consumed_events_total")
	}

	idleFrom, idleCPU := time.Now(), procCPU(reader.Pid())
	time.Sleep(5 * time.Second)
	idleRate := float64(procCPU(reader.Pid())-idleCPU) / float64(time.Since(idleFrom))

	cpu0, seen0, began := procCPU(reader.Pid()), consumed(), time.Now()
	const batch = 500
	for i := 0; i < burst; i += batch {
		envs := make([]events.Envelope, 0, batch)
		for j := i; j < i+batch; j++ {
			r := runs[j%len(runs)]
			envs = append(envs, events.MustNew(r[1], r[0], "processor", &events.LogEmittedData{Level: "info", Step: "run_ci", Stream: "stdout",
				Message: fmt.Sprintf("burst line %06d: go test ./... ok  github.com/example/project/pkg/module%03d  0.%03ds", j, j%1000, j%997)}))
		}
		if _, err := prod.Append(ctx, envs...); err != nil {
			t.Fatalf("burst append: %v", err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for consumed()-seen0 < burst {
		if time.Now().After(deadline) {
			t.Fatalf("the reader consumed %.0f of the burst's %d events in 2 minutes", consumed()-seen0, burst)
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(began)
	spent := float64(procCPU(reader.Pid())-cpu0) - idleRate*float64(elapsed)
	return burstReading{events: burst, rate: float64(burst) / elapsed.Seconds(), perEvent: spent / float64(time.Microsecond) / burst}
}

// scrapeCounter reads one unlabelled counter from a Prometheus text exposition.
func scrapeCounter(t *testing.T, ctx context.Context, url, name string) float64 {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	t.Fatalf("%s: no %s", url, name)
	return 0
}
