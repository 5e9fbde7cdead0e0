// Command bench is the notifier's load generator (issue #3's benchmarks a–d). It starts the
// server side — the embedded Kafka broker and one notifier — as a child process (the same
// binary with -serve), so server memory is measured apart from the clients, and drives it
// over loopback with coder/websocket clients (a different library from the server's) spread
// over several 127.0.0.x source addresses. Every scenario is bounded in time. It prints
// figures, not pass/fail.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ticketflow/ticketflow/libs/loadgen"

	"github.com/coder/websocket"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	serve := flag.Bool("serve", false, "internal: run the server side (broker + notifier)")
	pprofAddr := flag.String("pprof", "", "server child: serve net/http/pprof on this address")
	history := flag.Int("history", -1, "server child: TICKETFLOW_WS_HISTORY_PER_TICKET (-1 = default)")
	scenarios := flag.String("scenarios", "a,b,c,d", "which benchmarks to run")
	dur := flag.Duration("duration", 8*time.Second, "(a) measuring time")
	rates := flag.String("fanout-rates", "1000,2000,3000,4000", "(b) events/s steps over 100 tickets (x100 clients each)")
	step := flag.Duration("step", 4*time.Second, "(b) duration of each rate step")
	conns := flag.String("idle", "10000,19000", "(c) idle connection counts")
	hold := flag.Duration("hold", 0, "keep the server (and the last scenario's connections) up this long before exiting, for profiling")
	cpuProfile := flag.String("cpuprofile", "", "write the load generator's CPU profile here")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if *serve {
		if err := runServer(*pprofAddr, *history); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	limit := loadgen.RaiseFDLimit()
	b, err := start(*pprofAddr, *history)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer b.stop()
	fmt.Printf("notifier bench: server pid %d on %s, fd limit %d, GOMAXPROCS-shared 2-core box\n", b.child.Process.Pid, b.info.WS, limit)
	var rows [][]string
	for _, s := range strings.Split(*scenarios, ",") {
		var r [][]string
		var err error
		switch strings.TrimSpace(s) {
		case "a":
			r, err = b.latency(*dur)
		case "b":
			r, err = b.fanout(parseInts(*rates), *step)
		case "c":
			r, err = b.memory(parseInts(*conns), *hold)
		case "d":
			r, err = b.replay()
		default:
			err = fmt.Errorf("unknown scenario %q", s)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "scenario %s: %v\n", s, err)
		}
		rows = append(rows, r...)
	}
	fmt.Println()
	fmt.Print(loadgen.Table([]string{"benchmark", "figure", "target"}, rows))
}

func parseInts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// bench is the running server child plus the producer and client plumbing.
type bench struct {
	child    *exec.Cmd
	stdin    io.WriteCloser
	info     serverInfo
	cl       *kgo.Client
	verifier *auth.Verifier
	admin    string
	dialers  []*http.Client
	next     atomic.Uint64
}

func start(pprofAddr string, history int) (*bench, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"-serve", "-history", strconv.Itoa(history)}
	if pprofAddr != "" {
		args = append(args, "-pprof", pprofAddr)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("server child: %w", err)
	}
	b := &bench{child: cmd, stdin: stdin}
	if err := json.Unmarshal(line, &b.info); err != nil {
		return nil, err
	}
	b.cl, err = kgo.NewClient(kgo.SeedBrokers(b.info.Kafka...), kgo.DefaultProduceTopic(b.info.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		return nil, err
	}
	b.verifier, _ = auth.NewVerifier(b.info.Secret)
	b.admin, _ = b.verifier.Issue("bench", auth.RoleAdmin, 24*time.Hour)
	// 16 source addresses: 127.0.0.1 .. 127.0.0.16, so ports never run out.
	for i := 1; i <= 16; i++ {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i))}}
		b.dialers = append(b.dialers, &http.Client{Transport: &http.Transport{DialContext: d.DialContext}})
	}
	return b, nil
}

func (b *bench) stop() {
	_ = b.stdin.Close()
	done := make(chan struct{})
	go func() { _ = b.child.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = b.child.Process.Kill()
	}
	b.cl.Close()
}

// produce appends envelopes durably, in order.
func (b *bench) produce(ctx context.Context, envs []events.Envelope) ([]events.Position, error) {
	recs := make([]*kgo.Record, len(envs))
	for i, e := range envs {
		v, _ := json.Marshal(e)
		recs[i] = &kgo.Record{Key: []byte(e.TicketID), Value: v}
	}
	res := b.cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		return nil, err
	}
	out := make([]events.Position, len(res))
	for i, r := range res {
		out[i] = events.Position{Partition: r.Record.Partition, Offset: r.Record.Offset}
	}
	return out, nil
}

// produceAsync appends without waiting (the rate-controlled producers).
func (b *bench) produceAsync(envs []events.Envelope, failed *atomic.Int64) {
	for _, e := range envs {
		v, _ := json.Marshal(e)
		b.cl.Produce(context.Background(), &kgo.Record{Key: []byte(e.TicketID), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
}

// tickets creates n tickets (TicketCreated only: connecting without a cursor replays nothing).
func (b *bench) tickets(prefix string, n int) ([]string, error) {
	ids := make([]string, n)
	envs := make([]events.Envelope, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e9, i)
		envs[i] = events.MustNew(ids[i], "", "bench", &events.TicketCreatedData{Title: ids[i], Owner: "bench"})
	}
	_, err := b.produce(context.Background(), envs)
	return ids, err
}

func logLine(ticket string, i int) events.Envelope {
	return events.MustNew(ticket, "run", "processor", &events.LogEmittedData{Level: "INFO", Message: "bench line " + strconv.Itoa(i), Step: "run_ci"})
}

// wsClient is one connection with a reusable read buffer.
type wsClient struct {
	c   *websocket.Conn
	buf []byte
	rec record
}

func (b *bench) dial(ctx context.Context, ticket, cur string) (*wsClient, error) {
	q := url.Values{"access_token": {b.admin}}
	if cur != "" {
		q.Set("cursor", cur)
	}
	u := "ws://" + b.info.WS + "/ws/tickets/" + ticket + "?" + q.Encode()
	hc := b.dialers[b.next.Add(1)%uint64(len(b.dialers))]
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	return &wsClient{c: c, buf: make([]byte, 0, 512)}, nil
}

// read returns the next message (valid until the next read).
func (w *wsClient) read(ctx context.Context) (m []byte, err error) {
	w.buf, err = loadgen.ReadMessage(ctx, w.buf, w.c.Reader)
	return w.buf, err
}

var (
	tsKey   = []byte(`"timestamp":"`)
	typeKey = []byte(`"type":"`)
	curKey  = []byte(`"cursor":"`)
	idKey   = []byte(`"event_id":"`)
)

func field(m, key []byte) []byte {
	i := bytes.Index(m, key)
	if i < 0 {
		return nil
	}
	rest := m[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}

// latencyOf is now minus the message's timestamp (the event's occurred_at), in microseconds.
func latencyOf(m []byte, now time.Time) (int64, bool) {
	ts := field(m, tsKey)
	if ts == nil {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return 0, false
	}
	return now.Sub(t).Microseconds(), true
}

// connectAll opens one client per ticket slot with bounded dial concurrency and waits for
// each one's connected and replay_complete messages.
func (b *bench) connectAll(ctx context.Context, ticketOf func(i int) string, n int) ([]*wsClient, error) {
	return loadgen.DialAll(ctx, n, 256, func(ctx context.Context, i int) (*wsClient, error) {
		c, err := b.dial(ctx, ticketOf(i), "")
		if err != nil {
			return nil, err
		}
		m, err := c.read(ctx)
		if err == nil && string(field(m, typeKey)) != "connected" {
			err = fmt.Errorf("first message %s", m)
		}
		// Then the (empty) replay up to replay_complete: what follows is live.
		for err == nil && string(field(m, typeKey)) != "replay_complete" {
			m, err = c.read(ctx)
		}
		if err != nil {
			_ = c.c.CloseNow()
			return nil, err
		}
		return c, nil
	}, func(c *wsClient) { _ = c.c.CloseNow() })
}

// audience creates tickets tickets (their ids made of prefix) and connects n clients spread
// evenly over them.
func (b *bench) audience(ctx context.Context, prefix string, tickets, n int) ([]string, []*wsClient, error) {
	ids, err := b.tickets(prefix, tickets)
	if err != nil {
		return nil, nil, err
	}
	clients, err := b.connectAll(ctx, func(i int) string { return ids[i%tickets] }, n)
	return ids, clients, err
}

// listeners is an audience whose clients read (and record) every message from now on.
func (b *bench) listeners(prefix string, tickets, n int) ([]string, []*wsClient, error) {
	ids, clients, err := b.audience(context.Background(), prefix, tickets, n)
	if err == nil {
		readForever(clients)
	}
	return ids, clients, err
}

func closeAll(cs []*wsClient) {
	for _, c := range cs {
		if c != nil {
			_ = c.c.CloseNow()
		}
	}
}

type stats struct {
	lat []int64
}

func (s *stats) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	slices.Sort(s.lat)
	i := min(len(s.lat)-1, int(float64(len(s.lat))*p))
	return time.Duration(s.lat[i]) * time.Microsecond
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// recording switches latency and message recording on for every reader.
var recording atomic.Bool

// record is what one client's reader saw while recording was on.
type record struct {
	mu     sync.Mutex
	n      int64
	lat    []int64
	closed bool
}

// readForever reads on a context without a Done channel (coder/websocket then registers no
// context.AfterFunc per read, which on a shared context serialises every reader on its mutex)
// until the connection closes.
func readForever(clients []*wsClient) {
	for _, c := range clients {
		go func() {
			for {
				m, err := c.read(context.Background())
				if err != nil {
					c.rec.mu.Lock()
					c.rec.closed = true
					c.rec.mu.Unlock()
					return
				}
				if !recording.Load() {
					continue
				}
				now := time.Now()
				l, ok := latencyOf(m, now)
				c.rec.mu.Lock()
				c.rec.n++
				if ok {
					c.rec.lat = append(c.rec.lat, l)
				}
				c.rec.mu.Unlock()
			}
		}()
	}
}

// harvest collects and resets what the readers recorded.
func harvest(clients []*wsClient) (total, closed int64, st *stats) {
	st = &stats{}
	for _, c := range clients {
		c.rec.mu.Lock()
		total += c.rec.n
		if c.rec.closed {
			closed++
		}
		st.lat = append(st.lat, c.rec.lat...)
		c.rec.n, c.rec.lat = 0, nil
		c.rec.mu.Unlock()
	}
	return total, closed, st
}

// paced appends rate events/s round-robin over tickets until ctx ends.
func (b *bench) paced(ctx context.Context, ids []string, rate int, failed *atomic.Int64) int {
	const tick = 10 * time.Millisecond
	per := float64(rate) * tick.Seconds()
	t := time.NewTicker(tick)
	defer t.Stop()
	sent, acc := 0, 0.0
	for {
		select {
		case <-ctx.Done():
			return sent
		case <-t.C:
		}
		acc += per
		n := int(acc)
		acc -= float64(n)
		envs := make([]events.Envelope, n)
		for i := range envs {
			envs[i] = logLine(ids[(sent+i)%len(ids)], sent+i)
		}
		b.produceAsync(envs, failed)
		sent += n
	}
}

// (a) end-to-end latency at 1,000 events/s, 1,000 clients over 100 tickets.
func (b *bench) latency(d time.Duration) ([][]string, error) {
	fmt.Println("(a) latency: 1,000 clients over 100 tickets, 1,000 events/s for", d)
	ids, clients, err := b.listeners("lat", 100, 1000)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	ctx := context.Background()
	pctx, cancel := context.WithTimeout(ctx, d+time.Second)
	var failed atomic.Int64
	go func() { // 1 s warm-up, then record
		time.Sleep(time.Second)
		recording.Store(true)
	}()
	sent := b.paced(pctx, ids, 1000, &failed)
	cancel()
	time.Sleep(300 * time.Millisecond)
	recording.Store(false)
	total, closed, st := harvest(clients)
	fmt.Printf("    appended %d events, delivered %d messages, %d disconnects, %d append errors\n", sent, total, closed, failed.Load())
	p50, p99 := st.pct(0.50), st.pct(0.99)
	mx := st.pct(1)
	fmt.Printf("    p50 %s  p99 %s  max %s\n", ms(p50), ms(p99), ms(mx))
	return [][]string{{"(a) latency append→client, 1k ev/s, 1k clients/100 tickets",
		fmt.Sprintf("p50 %s, p99 %s, max %s", ms(p50), ms(p99), ms(mx)), "p99 ≤ 5 ms"}}, nil
}

// (b) fan-out: 10,000 clients over 100 tickets, increasing event rates.
func (b *bench) fanout(rates []int, step time.Duration) ([][]string, error) {
	fmt.Println("(b) fan-out: 10,000 clients over 100 tickets (100 per ticket)")
	ids, clients, err := b.listeners("fan", 100, 10000)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	ctx := context.Background()
	best := []string{"(b) fan-out, 10k clients/100 tickets", "no step sustained", "≥ 300,000 msg/s"}
	bestRate := 0.0
	for _, rate := range rates {
		pctx, cancel := context.WithTimeout(ctx, step+500*time.Millisecond)
		var failed atomic.Int64
		go func() {
			time.Sleep(500 * time.Millisecond)
			recording.Store(true)
		}()
		b.paced(pctx, ids, rate, &failed)
		cancel()
		recording.Store(false)
		total, closed, st := harvest(clients)
		delivered := float64(total) / step.Seconds()
		p99 := st.pct(0.99)
		offered := float64(rate * 100)
		fmt.Printf("    %5d events/s → offered %7.0f msg/s, delivered %7.0f msg/s, p99 %s, %d slow-client disconnects\n",
			rate, offered, delivered, ms(p99), closed)
		if closed > 0 {
			break // clients were cut off: past saturation
		}
		if delivered > bestRate {
			bestRate = delivered
			best[1] = fmt.Sprintf("%.0f msg/s delivered (%d ev/s × 100), p99 %s", delivered, rate, ms(p99))
		}
		if delivered < 0.9*offered {
			break
		}
	}
	return [][]string{best}, nil
}

type memInfo struct {
	RSS        int64 `json:"rss"`
	HeapInuse  int64 `json:"heap_inuse"`
	StackInuse int64 `json:"stack_inuse"`
	Goroutines int   `json:"goroutines"`
}

func (b *bench) mem() (memInfo, error) {
	var mi memInfo
	resp, err := http.Get("http://" + b.info.WS + "/debug/mem")
	if err != nil {
		return mi, err
	}
	defer resp.Body.Close()
	return mi, json.NewDecoder(resp.Body).Decode(&mi)
}

// (c) server memory per idle connection.
func (b *bench) memory(counts []int, hold time.Duration) ([][]string, error) {
	fmt.Println("(c) memory: idle connections over 100 tickets")
	ids, err := b.tickets("mem", 100)
	if err != nil {
		return nil, err
	}
	time.Sleep(200 * time.Millisecond)
	base, err := b.mem()
	if err != nil {
		return nil, err
	}
	fmt.Printf("    baseline RSS %.1f MiB, %d goroutines\n", float64(base.RSS)/(1<<20), base.Goroutines)
	var rows [][]string
	var clients []*wsClient
	defer func() { closeAll(clients) }()
	for _, n := range counts {
		more, err := b.connectAll(context.Background(), func(i int) string { return ids[i%100] }, n-len(clients))
		if err != nil {
			return rows, fmt.Errorf("opening %d connections: %w", n, err)
		}
		clients = append(clients, more...)
		// Keep reading (answers pings) like a real idle client.
		for _, c := range more {
			go func() {
				for {
					if _, err := c.read(context.Background()); err != nil {
						return
					}
				}
			}()
		}
		time.Sleep(time.Second)
		m, err := b.mem()
		if err != nil {
			return rows, err
		}
		per := float64(m.RSS-base.RSS) / float64(n) / 1024
		fmt.Printf("    %5d connections: RSS %.1f MiB → %.1f KiB per connection (heap %.1f KiB, stacks %.1f KiB per connection, %d goroutines)\n",
			n, float64(m.RSS)/(1<<20), per, float64(m.HeapInuse-base.HeapInuse)/float64(n)/1024,
			float64(m.StackInuse-base.StackInuse)/float64(n)/1024, m.Goroutines)
		rows = append(rows, []string{fmt.Sprintf("(c) RSS per idle connection at %d", n), fmt.Sprintf("%.1f KiB", per), "≤ 24 KiB"})
	}
	time.Sleep(hold)
	return rows, nil
}

// (d) replay: 10,000 missed events to one client; 5,000 clients resuming at once.
func (b *bench) replay() ([][]string, error) {
	fmt.Println("(d) replay")
	ctx := context.Background()
	ids, err := b.tickets("replay", 1)
	if err != nil {
		return nil, err
	}
	const missed = 10000
	first, err := b.produce(ctx, []events.Envelope{logLine(ids[0], -1)})
	if err != nil {
		return nil, err
	}
	for i := 0; i < missed; i += 1000 {
		envs := make([]events.Envelope, 1000)
		for j := range envs {
			envs[j] = logLine(ids[0], i+j)
		}
		if _, err := b.produce(ctx, envs); err != nil {
			return nil, err
		}
	}
	time.Sleep(500 * time.Millisecond)
	cur := cursor.Single(first[0].Partition, first[0].Offset).String()
	var times []time.Duration
	for run := 0; run < 5; run++ {
		t0 := time.Now()
		c, err := b.dial(ctx, ids[0], cur)
		if err != nil {
			return nil, err
		}
		got := 0
		for {
			m, err := c.read(ctx)
			if err != nil {
				return nil, err
			}
			typ := string(field(m, typeKey))
			if typ == "log" {
				got++
			}
			if typ == "replay_complete" {
				break
			}
		}
		times = append(times, time.Since(t0))
		_ = c.c.CloseNow()
		if got != missed {
			return nil, fmt.Errorf("replayed %d events, want %d", got, missed)
		}
	}
	slices.Sort(times)
	single := times[len(times)/2]
	fmt.Printf("    one client, %d missed events (from Kafka, beyond the in-memory window): median %s of 5 (min %s, max %s)\n",
		missed, ms(single), ms(times[0]), ms(times[len(times)-1]))

	// Storm: 5,000 clients over 100 tickets, all disconnected while 20 events per ticket are
	// appended, then all resume at once.
	tk, clients, err := b.audience(ctx, "storm", 100, 5000)
	if err != nil {
		return nil, err
	}
	mark := make([]events.Envelope, 100)
	for i := range mark {
		mark[i] = logLine(tk[i], -1)
	}
	if _, err := b.produce(ctx, mark); err != nil {
		return nil, err
	}
	cursors := make([]string, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := c.read(ctx)
			if err == nil {
				cursors[i] = string(field(m, curKey))
			}
		}()
	}
	wg.Wait()
	closeAll(clients)
	const gap = 20
	var missedEnvs []events.Envelope
	expect := map[string][]string{}
	for i := 0; i < gap; i++ {
		for _, t := range tk {
			e := logLine(t, i)
			missedEnvs = append(missedEnvs, e)
			expect[t] = append(expect[t], e.ID)
		}
	}
	if _, err := b.produce(ctx, missedEnvs); err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond)
	var bad, done atomic.Int64
	var last atomic.Int64
	t0 := time.Now()
	sem := make(chan struct{}, 1000)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			c, err := b.dial(ctx, tk[i%100], cursors[i])
			<-sem
			if err != nil {
				bad.Add(1)
				return
			}
			defer func() { _ = c.c.CloseNow() }()
			var got []string
			for {
				m, err := c.read(ctx)
				if err != nil {
					bad.Add(1)
					return
				}
				switch string(field(m, typeKey)) {
				case "log":
					got = append(got, string(field(m, idKey)))
				case "replay_complete":
					last.Store(time.Since(t0).Nanoseconds())
					if !slices.Equal(got, expect[tk[i%100]]) {
						bad.Add(1)
					}
					done.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	storm := time.Duration(last.Load())
	fmt.Printf("    storm: %d of %d clients caught up (%d events each) in %s; %d with a gap, duplicate or error\n",
		done.Load(), len(clients), gap, ms(storm), bad.Load())
	return [][]string{
		{"(d) replay 10,000 missed events, one client", ms(single), "≤ 50 ms"},
		{"(d) storm: 5,000 clients resume at once (20 missed each)", fmt.Sprintf("%s, %d gaps/dups", ms(storm), bad.Load()), "≤ 2 s, 0 gaps"},
	}, nil
}
