package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ticketflow/ticketflow/libs/tick"
)

// sizes are the scenario counts (full, -quick and -smoke differ).
type sizes struct {
	latClients, latTickets, latRate int
	latDur                          time.Duration
	fanClients, fanTickets          int
	fanDur                          time.Duration
	idle                            []int
	replay                          []int
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// result collects one repetition's figures for one system.
type result map[string]float64

// (a) latency publish → client at a fixed rate, open loop: every message is sent at its
// scheduled time in its own goroutine, so a slow acknowledgement never delays the next.
func latency(ctx context.Context, s system, z sizes, res result) error {
	ids, cs, err := ticketsWithClients(ctx, s, "lat", z.latTickets, z.latClients)
	if err != nil {
		return err
	}
	defer closeAll(cs)
	warm := 500 * time.Millisecond
	var acked, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	total := int(float64(z.latRate) * (warm + z.latDur).Seconds())
	interval := time.Second / time.Duration(z.latRate)
	var lateMax time.Duration
	recOn := false
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if late := time.Since(due); late > lateMax && recOn {
			lateMax = late
		}
		if !recOn && time.Since(start) >= warm {
			recording.Store(true)
			recOn = true
		}
		wg.Add(1)
		inWindow := recOn
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := s.Publish(pctx, ids[i%len(ids):i%len(ids)+1]); err != nil {
				failed.Add(1)
			} else if inWindow {
				acked.Add(1)
			}
		}()
	}
	sendEnd := time.Now()
	wg.Wait()
	time.Sleep(300 * time.Millisecond)
	recording.Store(false)
	lat := harvest(cs)
	_, closed := totalDelivered(cs)
	window := sendEnd.Sub(start) - warm
	res["lat_p50"] = msOf(percentile(lat, 0.50))
	res["lat_p99"] = msOf(percentile(lat, 0.99))
	res["lat_max"] = msOf(percentile(lat, 1))
	res["lat_rate"] = float64(acked.Load()) / window.Seconds()
	fmt.Printf("    %-18s (a) %d samples, p50 %.2f ms p99 %.2f ms max %.2f ms; publisher %.0f msg/s acknowledged (target %d, latest send %.1f ms behind schedule), %d errors, %d disconnects\n",
		s.Name(), len(lat), res["lat_p50"], res["lat_p99"], res["lat_max"], res["lat_rate"], z.latRate, msOf(lateMax), failed.Load(), closed)
	return nil
}

// pattern is a fan-out publishing pattern: publishers concurrent closed-loop requests, each
// of batch messages, spread over tickets or all to one ticket.
type pattern struct {
	key        string
	publishers int
	batch      int
	perTicket  bool
}

var patterns = []pattern{{"light", 2, 50, false}, {"heavy", 16, 100, false}, {"batch", 2, 50, true}}

// (b) fan-out: closed-loop publishers; they pause while the clients are more than maxLag
// messages per client behind (reported), so the figure is what is delivered sustainably.
func fanout(ctx context.Context, s system, z sizes, res result) error {
	ids, cs, err := ticketsWithClients(ctx, s, "fan", z.fanTickets, z.fanClients)
	if err != nil {
		return err
	}
	defer closeAll(cs)
	per := int64(z.fanClients / z.fanTickets)
	const maxLag = 200
	for _, p := range patterns {
		var published atomic.Int64
		base, _ := totalDelivered(cs)
		var paused atomic.Bool
		var pausedNs atomic.Int64
		pctx, cancel := context.WithCancel(ctx)
		go tick.Every(pctx, 5*time.Millisecond, func() bool { // the lag guard
			d, _ := totalDelivered(cs)
			paused.Store(published.Load()*per-(d-base) > maxLag*int64(len(cs)))
			return true
		})
		var wg sync.WaitGroup
		var failed atomic.Int64
		for w := range p.publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				next := w * 7
				batch := make([]string, p.batch)
				for pctx.Err() == nil {
					if paused.Load() {
						t0 := time.Now()
						time.Sleep(time.Millisecond)
						pausedNs.Add(int64(time.Since(t0)))
						continue
					}
					for i := range batch {
						if p.perTicket {
							batch[i] = ids[next%len(ids)]
						} else {
							batch[i] = ids[(next+i)%len(ids)]
						}
					}
					next += map[bool]int{true: 1, false: p.batch}[p.perTicket]
					if err := s.Publish(pctx, batch); err != nil {
						if pctx.Err() == nil {
							failed.Add(1)
						}
						continue
					}
					published.Add(int64(len(batch)))
				}
			}()
		}
		warm := 500 * time.Millisecond
		time.Sleep(warm)
		d0, _ := totalDelivered(cs)
		p0 := pausedNs.Load()
		recording.Store(true)
		t0 := time.Now()
		time.Sleep(z.fanDur)
		d1, closed := totalDelivered(cs)
		el := time.Since(t0)
		recording.Store(false)
		pausedFrac := float64(pausedNs.Load()-p0) / float64(p.publishers) / float64(el)
		cancel()
		wg.Wait()
		lat := harvest(cs)
		rate := float64(d1-d0) / el.Seconds()
		res["fan_"+p.key] = rate
		res["fan_"+p.key+"_p99"] = msOf(percentile(lat, 0.99))
		res["fan_"+p.key+"_paused"] = 100 * pausedFrac
		fmt.Printf("    %-18s (b) %-5s %d×%d%s: %.0f msg/s delivered, p99 %.1f ms, publishers paused %.0f %%, %d errors, %d disconnects\n",
			s.Name(), p.key, p.publishers, p.batch, map[bool]string{true: " per ticket", false: ""}[p.perTicket],
			rate, res["fan_"+p.key+"_p99"], 100*pausedFrac, failed.Load(), closed)
		// Drain before the next pattern.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			d, _ := totalDelivered(cs)
			if published.Load()*per-(d-base) <= 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if closed > 0 {
			return fmt.Errorf("%d clients disconnected during %s", closed, p.key)
		}
	}
	return nil
}

// (c) server RSS per idle connection.
func memory(ctx context.Context, s system, z sizes, res result) error {
	ids, err := s.Tickets(ctx, "mem", 100)
	if err != nil {
		return err
	}
	time.Sleep(time.Second)
	base, err := rssOf(s.PID())
	if err != nil {
		return err
	}
	var cs []*client
	defer func() { closeAll(cs) }()
	for _, n := range z.idle {
		more, err := connectAll(ctx, s, ids, n-len(cs))
		if err != nil {
			return fmt.Errorf("opening %d connections: %w", n, err)
		}
		cs = append(cs, more...)
		time.Sleep(2 * time.Second)
		r, err := rssOf(s.PID())
		if err != nil {
			return err
		}
		per := float64(r-base) / float64(n)
		res[fmt.Sprintf("rss_%d", n)] = per
		fmt.Printf("    %-18s (c) %d idle connections: RSS %.1f → %.1f MiB, %.1f KiB per connection\n",
			s.Name(), n, float64(base)/1024, float64(r)/1024, per)
	}
	closeAll(cs)
	cs = nil
	time.Sleep(time.Second)
	return nil
}

// (d) replay of n missed events to one client: median of three tries.
func replay(ctx context.Context, s system, z sizes, res result) error {
	for _, n := range z.replay {
		ids, err := s.Tickets(ctx, "replay", 1)
		if err != nil {
			return err
		}
		pos, err := s.Mark(ctx, ids[0])
		if err != nil {
			return err
		}
		for i := 0; i < n; i += 500 {
			batch := make([]string, min(500, n-i))
			for j := range batch {
				batch[j] = ids[0]
			}
			if err := s.Publish(ctx, batch); err != nil {
				return err
			}
		}
		settled := waitIdle(s.PID(), 30*time.Second)
		var ts []float64
		for range 3 {
			t0 := time.Now()
			got, err := s.Replay(ctx, ids[0], pos)
			if err != nil {
				return err
			}
			if got != n {
				return fmt.Errorf("replayed %d of %d", got, n)
			}
			ts = append(ts, msOf(time.Since(t0)))
		}
		res[fmt.Sprintf("replay_%d", n)] = median(ts)
		fmt.Printf("    %-18s (d) replay of %d missed events: %.2f ms (tries %.1f / %.1f / %.1f ms; idle %.1f s after publishing)\n", s.Name(), n, median(ts), ts[0], ts[1], ts[2], settled.Seconds())
	}
	return nil
}
