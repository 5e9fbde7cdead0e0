// Command bench-compare runs the same WebSocket scenarios against Centrifugo (the reference,
// built from the Go module proxy) and `ticketflow dev`, interleaved per repetition, and
// prints each figure for both with the ratio (issue #11). Loopback only, bounded in time;
// numbers, not pass/fail. `make bench-compare`, or `cd bench && go run . -h`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/ticketflow/ticketflow/libs/loadgen"
)

type options struct {
	quick, smoke bool
	reps         int
	scenarios    string
	cache        string
	repo         string
	dbURL        string
	sources      int
	keep         bool
	pipeline     bool
	// tfEnv is extra environment of `ticketflow dev` (a tuned setup, printed with the results).
	tfEnv []string
}

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "a ~2 minute run: one repetition, shorter windows, 10,000 idle connections only")
	flag.BoolVar(&o.smoke, "smoke", false, "with -quick: tiny counts (< 60 s), to check the harness works")
	flag.IntVar(&o.reps, "reps", 3, "repetitions (each figure is the median); -quick sets 1")
	flag.StringVar(&o.scenarios, "scenarios", "c,a,b,d", "scenarios in the order run in each repetition")
	flag.StringVar(&o.cache, "cache", "../.data/bench-compare", "where the built servers are kept (Centrifugo is reused)")
	flag.StringVar(&o.repo, "repo", "..", "the ticketflow checkout to build")
	flag.StringVar(&o.dbURL, "database-url", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ticketflow?sslmode=disable"),
		"PostgreSQL for `ticketflow dev` (a database of its own is created per repetition and dropped)")
	flag.IntVar(&o.sources, "sources", 16, "client source addresses 127.0.0.1..N (loopback)")
	flag.BoolVar(&o.keep, "keep", false, "keep the run directory (configs, server logs)")
	flag.BoolVar(&o.pipeline, "pipeline", true, "then measure the pipeline's own throughput (p1–p4) on a ticketflow of its own")
	flag.Func("tf-env", "`KEY=VALUE` added to ticketflow dev's environment (repeatable): a tuned setup, printed with the results", func(kv string) error {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("%q is not KEY=VALUE", kv)
		}
		o.tfEnv = append(o.tfEnv, kv)
		return nil
	})
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-compare:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func sizesFor(o options, fdLimit uint64) sizes {
	z := sizes{latClients: 1000, latTickets: 100, latRate: 1000, latDur: 8 * time.Second,
		fanClients: 10000, fanTickets: 100, fanDur: 5 * time.Second,
		idle: []int{10000, 19000}, replay: []int{1000, 10000}}
	if o.quick {
		z.latDur, z.fanDur, z.idle = 3*time.Second, 2*time.Second, []int{10000}
	}
	if o.smoke {
		z = sizes{latClients: 50, latTickets: 5, latRate: 100, latDur: time.Second,
			fanClients: 200, fanTickets: 10, fanDur: time.Second, idle: []int{200}, replay: []int{100, 500}}
	}
	// Every connection is a descriptor here and in the server: keep 500 spare.
	var idle []int
	for _, n := range z.idle {
		if uint64(n)+500 <= fdLimit {
			idle = append(idle, n)
		} else {
			fmt.Printf("skipping %d idle connections: fd limit %d\n", n, fdLimit)
		}
	}
	z.idle = idle
	return z
}

// build returns the Centrifugo binary (built once into the cache) and a fresh ticketflow.
func build(ctx context.Context, o options) (cf, tf string, err error) {
	cache, err := filepath.Abs(o.cache)
	if err != nil {
		return "", "", err
	}
	cfDir := filepath.Join(cache, "centrifugo-"+centrifugoVersion)
	cf = filepath.Join(cfDir, "centrifugo")
	if _, err := os.Stat(cf); err != nil {
		fmt.Printf("building Centrifugo %s from the Go module proxy into %s (a few minutes, once)\n", centrifugoVersion, cfDir)
		if err := os.MkdirAll(cfDir, 0o755); err != nil {
			return "", "", err
		}
		cmd := exec.CommandContext(ctx, "go", "install", "github.com/centrifugal/centrifugo/v6@"+centrifugoVersion)
		cmd.Dir = cfDir
		cmd.Env = append(os.Environ(), "GOBIN="+cfDir, "GOWORK=off")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", "", fmt.Errorf("go install centrifugo: %w", err)
		}
	}
	tf = filepath.Join(cache, "ticketflow")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tf, "./cmd/ticketflow")
	cmd.Dir = o.repo
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("go build ticketflow: %w", err)
	}
	return cf, tf, nil
}

var scenarioFuncs = map[string]func(context.Context, system, sizes, result) error{
	"a": latency, "b": fanout, "c": memory, "d": replay,
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "?"
}

func run(ctx context.Context, o options) error {
	t0 := time.Now()
	if o.quick || o.smoke {
		o.reps = 1
	}
	fdLimit := loadgen.RaiseFDLimit()
	z := sizesFor(o, fdLimit)
	load0 := loadavg()
	cfBin, tfBin, err := build(ctx, o)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-compare-*")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	d := newDialers(o.sources)
	results := map[string][]result{"cf": nil, "tf": nil}
	var cfCmd, tfCmd string
	var tfEnv []string
	for rep := 1; rep <= o.reps; rep++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Printf("== repetition %d of %d (load average %s)\n", rep, o.reps, loadavg())
		repDir := filepath.Join(dir, fmt.Sprintf("rep%d", rep))
		if err := os.MkdirAll(repDir, 0o755); err != nil {
			return err
		}
		cf, err := startCentrifugo(cfBin, repDir, d)
		if err != nil {
			return err
		}
		dbURL, err := benchDB(o.dbURL, fmt.Sprintf("ticketflow_benchcmp_%d_%d", os.Getpid(), rep))
		if err != nil {
			cf.Stop()
			return err
		}
		tf, err := startTicketflow(tfBin, repDir, dbURL, d, o.tfEnv...)
		if err != nil {
			cf.Stop()
			dropDB(dbURL)
			return err
		}
		cfCmd, tfCmd, tfEnv = cf.cmd, tf.cmd, tf.env
		rcf, rtf := result{}, result{}
		for _, k := range strings.Split(o.scenarios, ",") {
			fn := scenarioFuncs[strings.TrimSpace(k)]
			if fn == nil {
				continue
			}
			// Interleaved: Centrifugo, then ticketflow, scenario by scenario.
			for _, p := range []struct {
				s system
				r result
			}{{cf, rcf}, {tf, rtf}} {
				sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
				if err := fn(sctx, p.s, z, p.r); err != nil {
					fmt.Printf("    %-18s (%s) failed: %v\n", p.s.Name(), k, err)
				}
				cancel()
			}
		}
		cf.Stop()
		tf.Stop()
		results["cf"] = append(results["cf"], rcf)
		results["tf"] = append(results["tf"], rtf)
	}
	figs := figures(z, results)
	fmt.Println()
	fmt.Printf("bench-compare: %s vs ticketflow (%s), median of %d repetition(s), %s\n", centrifugoVersion, gitHead(o.repo), o.reps, time.Since(t0).Round(time.Second))
	fmt.Print(loadgen.Table([]string{"figure", "Centrifugo " + centrifugoVersion, "ticketflow", "ratio (ticketflow ÷ Centrifugo)"}, rows(figs)))
	fmt.Println()
	fmt.Printf("machine: %d cores (%s), %s/%s, bench built with %s, fd limit %d, load average %s at start, %s at end (shared machine: noisy)\n",
		runtime.NumCPU(), cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.Version(), fdLimit, load0, loadavg())
	fmt.Printf("loopback only: servers on 127.0.0.1, clients (coder/websocket) from 127.0.0.1..127.0.0.%d; servers and load generator are separate processes on the same cores\n", o.sources)
	fmt.Println("ticketflow: `ticketflow dev` (embedded broker persisted in a temp data dir, projector + processor + notifier, defaults otherwise); published by appending LogEmitted events with an idempotent acks=all franz-go producer (kafka.NewClient + Producer.Append), so every figure includes the Kafka hop")
	fmt.Println("  WebSocket caps lifted (every client is user \"bench\" on loopback): TICKETFLOW_WS_MAX_CONNS_PER_USER=0 TICKETFLOW_WS_MAX_CONNS_PER_IP=0 TICKETFLOW_WS_CONNECT_RATE=0")
	fmt.Printf("Centrifugo: memory engine, HTTP API (publish / batch), JSON protocol on /connection/websocket; namespace tickets: history %d, ttl 600s, force_recovery; namespace replay (d): history %d and client.recovery_max_publication_limit %d (default 300: raised)\n",
		cfHistory, cfReplayHistory, cfReplayHistory)
	fmt.Println("(b): closed-loop publishers (publishers × messages per request), paused while clients are > 200 messages each behind; \"per ticket\": each request's messages go to one ticket")
	fmt.Println("commands:")
	fmt.Printf("  %s\n", strings.Join(os.Args, " "))
	fmt.Printf("  %s\n", cfCmd)
	fmt.Printf("  %s %s\n", strings.Join(tfEnv, " "), tfCmd)
	if o.pipeline {
		return pipelineTable(ctx, o, tfBin, dir, d)
	}
	return nil
}

// pipelineTable measures (p1)–(p4) on a fresh `ticketflow dev` and prints them.
func pipelineTable(ctx context.Context, o options, tfBin, dir string, d *dialers) error {
	fmt.Println()
	fmt.Printf("== the pipeline's own throughput (load average %s)\n", loadavg())
	pdir := filepath.Join(dir, "pipeline")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return err
	}
	dbURL, err := benchDB(o.dbURL, fmt.Sprintf("ticketflow_benchcmp_%d_pipeline", os.Getpid()))
	if err != nil {
		return err
	}
	tf, err := startTicketflow(tfBin, pdir, dbURL, d, pipelineEnv...)
	if err != nil {
		dropDB(dbURL)
		return err
	}
	defer tf.Stop()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	z := pipelineSizesFor(o)
	rows, err := runPipeline(pctx, tf, z)
	var table [][]string
	for _, r := range rows {
		table = append(table, []string{r.name, r.value, r.reference, r.ratio})
	}
	fmt.Print(loadgen.Table([]string{"figure", "ticketflow", "reference, same run, same broker / database", "ratio"}, table))
	fmt.Printf("ticketflow: `ticketflow dev` as above plus %s (load average %s at end)\n", strings.Join(pipelineEnv, " "), loadavg())
	return err
}

func gitHead(repo string) string {
	out, err := exec.Command("git", "-C", repo, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// figures assembles the table's rows from every repetition's results.
func figures(z sizes, results map[string][]result) []*figure {
	f := func(name, key, unit string, lower bool) *figure {
		fg := &figure{name: name, unit: unit, lowerBetter: lower}
		for _, r := range results["cf"] {
			if v, ok := r[key]; ok {
				fg.cf = append(fg.cf, v)
			}
		}
		for _, r := range results["tf"] {
			if v, ok := r[key]; ok {
				fg.tf = append(fg.tf, v)
			}
		}
		return fg
	}
	lat := fmt.Sprintf("(a) latency at %d msg/s, %d clients / %d tickets", z.latRate, z.latClients, z.latTickets)
	fan := fmt.Sprintf("(b) fan-out %d clients / %d tickets", z.fanClients, z.fanTickets)
	figs := []*figure{
		f(lat+": p50", "lat_p50", "ms", true),
		f(lat+": p99", "lat_p99", "ms", true),
		f(lat+": max", "lat_max", "ms", true),
		f("(a) publisher rate achieved (acknowledged)", "lat_rate", "msg/s", false),
	}
	for _, p := range patterns {
		desc := fmt.Sprintf("%s, %s %d×%d", fan, p.key, p.publishers, p.batch)
		if p.perTicket {
			desc += " per-ticket batches"
		}
		figs = append(figs, f(desc+": delivered", "fan_"+p.key, "msg/s", false),
			f(desc+": p99", "fan_"+p.key+"_p99", "ms", true),
			f(desc+": publishers paused", "fan_"+p.key+"_paused", "%", true))
	}
	for _, n := range z.idle {
		figs = append(figs, f(fmt.Sprintf("(c) server RSS per idle connection at %d", n), fmt.Sprintf("rss_%d", n), "KiB", true))
	}
	for _, n := range z.replay {
		figs = append(figs, f(fmt.Sprintf("(d) replay of %d missed events to one client", n), fmt.Sprintf("replay_%d", n), "ms", true))
	}
	return figs
}
