package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ticketflow/ticketflow/libs/events"
)

// The pipeline's own throughput (issue #11 part 6), on a `ticketflow dev` of its own, each
// figure beside a reference measured on the same broker or database in the same run:
//
//	(p1) start requests/s (HTTP → durable append → projection seen) and their p99, against
//	     the same number of single-record acks=all appends by as many concurrent writers;
//	(p2) simulated runs/s and their events/s through the processor, against the broker's raw
//	     rate for batched appends;
//	(p3) projector events/s into PostgreSQL (exactly-once offsets), against COPY of the same
//	     rows into a copy of the audit table with the same indexes;
//	(p4) NDJSON export of one ticket's audit trail in MB/s, against COPY TO of the same rows.
//
// The instance runs with what the figures need beyond the defaults, printed with the table:
// no per-user write rate (one user sends every request), simulated steps without delay (so a
// run costs the processor's work, not sleeps), and a MAX_ITERATIONS that never stops a run.
var pipelineEnv = []string{"TICKETFLOW_WRITE_RATE=0", "TICKETFLOW_SIM_STEP_DELAY=0s", "MAX_ITERATIONS=1000"}

type pipelineSizes struct {
	starts, writers int // (p1) and (p2): runs started, concurrent HTTP clients
	burst, tickets  int // (p3): events appended at once over this many tickets; (p4) exports one
}

type pipelineRow struct {
	name, value, reference, ratio string
}

func pipelineSizesFor(o options) pipelineSizes {
	switch {
	case o.smoke:
		return pipelineSizes{starts: 20, writers: 4, burst: 1000, tickets: 4}
	case o.quick:
		return pipelineSizes{starts: 100, writers: 16, burst: 5000, tickets: 5}
	}
	return pipelineSizes{starts: 300, writers: 32, burst: 20000, tickets: 10}
}

func runPipeline(ctx context.Context, t *ticketflow, z pipelineSizes) ([]pipelineRow, error) {
	db, err := pgx.Connect(ctx, t.dbURL)
	if err != nil {
		return nil, err
	}
	defer db.Close(ctx)
	var out []pipelineRow
	p1, p2, err := startsAndRuns(ctx, t, db, z)
	if err != nil {
		return nil, fmt.Errorf("(p1/p2): %w", err)
	}
	out = append(out, p1...)
	out = append(out, p2...)
	p3, ticket, err := projection(ctx, t, db, z)
	if err != nil {
		return out, fmt.Errorf("(p3): %w", err)
	}
	out = append(out, p3...)
	p4, err := export(ctx, t, db, ticket)
	if err != nil {
		return out, fmt.Errorf("(p4): %w", err)
	}
	return append(out, p4...), nil
}

// waitCount polls query (a count) until it reaches want.
func waitCount(ctx context.Context, db *pgx.Conn, want int64, query string, args ...any) error {
	for {
		var n int64
		if err := db.QueryRow(ctx, query, args...).Scan(&n); err != nil {
			return err
		}
		if n >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d after the deadline (%s)", n, want, query)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

func startsAndRuns(ctx context.Context, t *ticketflow, db *pgx.Conn, z pipelineSizes) (p1, p2 []pipelineRow, err error) {
	ids, err := t.Tickets(ctx, "pipe", z.starts)
	if err != nil {
		return nil, nil, err
	}
	if err := waitCount(ctx, db, int64(z.starts), `SELECT count(*) FROM tickets WHERE id LIKE 'pipe-%'`); err != nil {
		return nil, nil, err
	}
	var before int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM ticket_events`).Scan(&before); err != nil {
		return nil, nil, err
	}
	var failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	lat := timeEach(z.starts, z.writers, func(i int) {
		if err := t.start(ctx, ids[i]); err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err)
		}
	})
	startsTook := time.Since(start)
	if n := failed.Load(); n > 0 {
		return nil, nil, fmt.Errorf("%d of %d starts failed, first: %v", n, z.starts, firstErr.Load())
	}
	if err := waitCount(ctx, db, int64(z.starts), `SELECT count(*) FROM runs WHERE ticket_id LIKE 'pipe-%' AND finished_at IS NOT NULL`); err != nil {
		return nil, nil, err
	}
	runsTook := time.Since(start)
	var after int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM ticket_events`).Scan(&after); err != nil {
		return nil, nil, err
	}

	// References on the same broker: single-record appends by as many writers, then batches.
	rawStart := time.Now()
	raw := timeEach(z.starts, z.writers, func(i int) {
		if _, err := t.producer.Append(ctx, logEvent(ids[i], "raw append")); err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err)
		}
	})
	rawTook := time.Since(rawStart)
	if n := failed.Load(); n > 0 {
		return nil, nil, fmt.Errorf("%d of %d raw appends failed, first: %v", n, z.starts, firstErr.Load())
	}
	events := int(after - before)
	batchRate, err := batchedAppendRate(ctx, t, ids, events)
	if err != nil {
		return nil, nil, err
	}
	startRate, rawRate := rate(z.starts, startsTook), rate(z.starts, rawTook)
	p99, rawP99 := percentile(lat, 0.99), percentile(raw, 0.99)
	p1 = []pipelineRow{
		{fmt.Sprintf("(p1) start requests/s, %d starts from %d concurrent clients", z.starts, z.writers),
			fmt.Sprintf("%.0f req/s", startRate), fmt.Sprintf("%.0f appends/s (single-record acks=all appends, %d writers)", rawRate, z.writers),
			fmt.Sprintf("%.2f×", startRate/rawRate)},
		{"(p1) start request p99", fmt.Sprintf("%.2f ms", msOf(p99)), fmt.Sprintf("%.2f ms (append p99)", msOf(rawP99)),
			fmt.Sprintf("%.2f×", msOf(p99)/msOf(rawP99))},
	}
	evRate := rate(events, runsTook)
	p2 = []pipelineRow{
		{fmt.Sprintf("(p2) simulated runs through the processor (%d runs, %d events)", z.starts, events),
			fmt.Sprintf("%.1f runs/s = %.0f events/s", rate(z.starts, runsTook), evRate),
			fmt.Sprintf("%.0f events/s (batched appends of 100)", batchRate), fmt.Sprintf("%.3f×", evRate/batchRate)},
	}
	return p1, p2, nil
}

// batchedAppendRate is the broker's raw rate: n LogEmitted events in appends of 100.
func batchedAppendRate(ctx context.Context, t *ticketflow, ids []string, n int) (float64, error) {
	n = max(n, 1000)
	envs := make([]events.Envelope, n)
	for i := range envs {
		envs[i] = logEvent(ids[i%len(ids)], payloadText(i))
	}
	start := time.Now()
	for i := 0; i < n; i += 100 {
		if _, err := t.producer.Append(ctx, envs[i:min(i+100, n)]...); err != nil {
			return 0, err
		}
	}
	return rate(n, time.Since(start)), nil
}

func projection(ctx context.Context, t *ticketflow, db *pgx.Conn, z pipelineSizes) ([]pipelineRow, string, error) {
	ids, err := t.Tickets(ctx, "proj", z.tickets)
	if err != nil {
		return nil, "", err
	}
	if err := waitCount(ctx, db, int64(z.tickets), `SELECT count(*) FROM tickets WHERE id = ANY($1)`, ids); err != nil {
		return nil, "", err
	}
	envs := make([]events.Envelope, z.burst)
	for i := range envs {
		envs[i] = logEvent(ids[i%len(ids)], payloadText(i))
	}
	start := time.Now()
	for i := 0; i < len(envs); i += 500 {
		if _, err := t.producer.Append(ctx, envs[i:min(i+500, len(envs))]...); err != nil {
			return nil, "", err
		}
	}
	if err := waitCount(ctx, db, int64(z.burst), `SELECT count(*) FROM ticket_events WHERE ticket_id = ANY($1) AND type = 'LogEmitted'`, ids); err != nil {
		return nil, "", err
	}
	took := time.Since(start)

	// The reference: the same rows, COPYed in batches of 500 into a table like the audit trail.
	var rows [][]any
	if err := func() error {
		r, err := db.Query(ctx, `SELECT event_id, ticket_id, run_id, type, version, occurred_at, actor, topic_id, partition, "offset", envelope, headers
			FROM ticket_events WHERE ticket_id = ANY($1) AND type = 'LogEmitted'`, ids)
		if err != nil {
			return err
		}
		defer r.Close()
		for r.Next() {
			v, err := r.Values()
			if err != nil {
				return err
			}
			rows = append(rows, v)
		}
		return r.Err()
	}(); err != nil {
		return nil, "", err
	}
	if _, err := db.Exec(ctx, `CREATE TEMP TABLE bench_events (LIKE ticket_events INCLUDING ALL)`); err != nil {
		return nil, "", err
	}
	cols := []string{"event_id", "ticket_id", "run_id", "type", "version", "occurred_at", "actor", "topic_id", "partition", "offset", "envelope", "headers"}
	copyStart := time.Now()
	for i := 0; i < len(rows); i += 500 {
		if _, err := db.CopyFrom(ctx, pgx.Identifier{"bench_events"}, cols, pgx.CopyFromRows(rows[i:min(i+500, len(rows))])); err != nil {
			return nil, "", err
		}
	}
	copyRate := rate(len(rows), time.Since(copyStart))
	projRate := rate(z.burst, took)
	return []pipelineRow{{fmt.Sprintf("(p3) projector: %d events appended at once, until all are in PostgreSQL", z.burst),
		fmt.Sprintf("%.0f events/s", projRate), fmt.Sprintf("%.0f rows/s (COPY of the same rows, batches of 500, same indexes)", copyRate),
		fmt.Sprintf("%.2f×", projRate/copyRate)}}, ids[0], nil
}

func export(ctx context.Context, t *ticketflow, db *pgx.Conn, ticket string) ([]pipelineRow, error) {
	var best, bestRef float64
	var size int64
	for range 3 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.addr+"/api/tickets/"+ticket+"/events?format=ndjson", nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+t.token)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("export: status %d, %v", resp.StatusCode, err)
		}
		size = n
		best = max(best, float64(n)/time.Since(start).Seconds())

		var buf countingWriter
		start = time.Now()
		if _, err := db.PgConn().CopyTo(ctx, &buf, `COPY (SELECT envelope FROM ticket_events WHERE ticket_id = `+quoteLiteral(ticket)+
			` ORDER BY partition, "offset") TO STDOUT`); err != nil {
			return nil, err
		}
		bestRef = max(bestRef, float64(buf.n)/time.Since(start).Seconds())
	}
	return []pipelineRow{{fmt.Sprintf("(p4) NDJSON export of one ticket's audit trail (%.1f MB), best of 3", float64(size)/1e6),
		fmt.Sprintf("%.1f MB/s", best/1e6), fmt.Sprintf("%.1f MB/s (COPY TO of the same envelopes)", bestRef/1e6),
		fmt.Sprintf("%.2f×", best/bestRef)}}, nil
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// start asks for a run of ticket over HTTP and expects 202.
func (t *ticketflow) start(ctx context.Context, ticket string) error {
	body, _ := json.Marshal(map[string]string{"ticket_id": ticket})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+t.addr+"/api/tickets/processing/start", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+t.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("start %s: %d %s", ticket, resp.StatusCode, b)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// timeEach calls fn(i) for i in [0, n) from workers goroutines and returns each call's time.
func timeEach(n, workers int, fn func(i int)) []time.Duration {
	took := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				t0 := time.Now()
				fn(i)
				took[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	return took
}
