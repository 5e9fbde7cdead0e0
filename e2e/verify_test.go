package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/workflow"
	"github.com/ticketflow/ticketflow/services/projector/projector"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// logRecord is one record of the event topic as a read_committed consumer sees it.
type logRecord struct {
	partition int32
	offset    int64
	env       events.Envelope
	payload   events.Payload // nil when the type or version is unknown
}

// readLog reads the whole topic, read_committed, up to the last stable offsets of now.
func readLog(ctx context.Context, kcfg config.Kafka) ([]logRecord, error) {
	cl, err := kafka.NewClient(kcfg, kgo.ConsumeTopics(kcfg.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, kcfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	var out []logRecord
	next := map[int32]int64{}
	deadline := time.Now().Add(90 * time.Second)
	idle := 0
	for {
		complete := true
		for p, end := range want {
			if next[p] < end {
				complete = false
			}
		}
		// A transaction's commit marker takes the last offset: no data record reaches it.
		if complete || idle >= 3 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("log not read to its end in time (have %v, want %v)", next, want)
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			next[r.Partition] = r.Offset + 1
			lr := logRecord{partition: r.Partition, offset: r.Offset}
			env, err := events.DecodeEnvelope(r.Value)
			if err != nil {
				return
			}
			lr.env = env
			lr.payload, _ = env.Decode()
			out = append(out, lr)
		})
		if n == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].partition != out[j].partition {
			return out[i].partition < out[j].partition
		}
		return out[i].offset < out[j].offset
	})
	return out, nil
}

// deliverable mirrors the notifier's newItem: the events that become a client message.
func deliverable(r logRecord) bool {
	if r.payload == nil {
		return false
	}
	if _, ok := workflow.StatusUpdate(r.env, r.payload); ok {
		return true
	}
	switch r.payload.(type) {
	case *events.LogEmittedData, *events.CIResultData, *events.TicketCreatedData, *events.RunStartedData,
		*events.StepCompletedData, *events.RunRejectedData, *events.CancelRequestedData, *events.ChangesRequestedData,
		*events.LogTruncatedData, *events.RunResumedData:
		return true
	}
	return false
}

func terminalType(t events.Type) bool {
	switch t {
	case events.RunCompleted, events.RunFailed, events.RunCancelled, events.RunRejected:
		return true
	}
	return false
}

// processorType: events only a processor appends for a run.
func processorType(t events.Type) bool {
	switch t {
	case events.RunStarted, events.StepStarted, events.StepCompleted, events.LogEmitted, events.CIResult:
		return true
	}
	return false
}

// invariant is one row of the summary: a count of violations (hard rows fail the test).
type invariant struct {
	name  string
	count int
	hard  bool
	note  string
}

// checkLog computes every log-based invariant of the ledger and the WebSocket clients.
func checkLog(led *ledger, recs []logRecord, clients []*wsClient) ([]invariant, map[string]int) {
	info := map[string]int{"log records": len(recs)}
	byID := map[string]int{}
	dupTypes := map[events.Type]int{}
	type runFacts struct {
		requested, started, terminal map[string]bool
	}
	runs := map[string]*runFacts{}
	fact := func(id string) *runFacts {
		f := runs[id]
		if f == nil {
			f = &runFacts{map[string]bool{}, map[string]bool{}, map[string]bool{}}
			runs[id] = f
		}
		return f
	}
	ticketCreated := map[string]bool{}
	approved := map[string]bool{}
	changesOn := map[string]bool{}
	stepIndex := map[string]int{}
	for i, s := range workflow.Steps {
		stepIndex[s.Name] = i
	}
	type stepKey struct{ iter, step, attempt int }
	less := func(a, b stepKey) bool {
		if a.iter != b.iter {
			return a.iter < b.iter
		}
		if a.step != b.step {
			return a.step < b.step
		}
		return a.attempt < b.attempt
	}
	type runProgress struct {
		max, lastStarted stepKey
		any, ended       bool
	}
	progress := map[string]*runProgress{}
	staleSteps, afterTerminal, overlapping := 0, 0, 0
	var staleEx, afterEx, multiEx []string
	example := func(list *[]string, r logRecord) {
		if len(*list) < 3 {
			*list = append(*list, fmt.Sprintf("run %s %s@%d/%d %s", r.env.RunID, r.env.Type, r.partition, r.offset, stepOf(r.payload)))
		}
	}
	activeRun := map[string]string{} // ticket → run between its RunStarted and its terminal event

	for _, r := range recs {
		e := r.env
		byID[e.ID]++
		if byID[e.ID] > 1 {
			dupTypes[e.Type]++
			continue // effects are judged on the first copy; the copy is counted above
		}
		switch e.Type {
		case events.TicketCreated:
			ticketCreated[e.TicketID] = true
		case events.TicketProcessingRequested:
			fact(e.RunID).requested[e.ID] = true
		case events.RunStarted:
			fact(e.RunID).started[e.ID] = true
			if other := activeRun[e.TicketID]; other != "" && other != e.RunID {
				overlapping++ // two runs of one ticket at once: a start was not serialised
			}
			activeRun[e.TicketID] = e.RunID
		case events.ValidationApproved:
			approved[e.RunID] = true
		case events.ChangesRequested:
			changesOn[e.RunID] = true
		}
		if terminalType(e.Type) {
			if len(fact(e.RunID).terminal) > 0 {
				example(&multiEx, r)
			}
			fact(e.RunID).terminal[e.ID] = true
			if activeRun[e.TicketID] == e.RunID {
				delete(activeRun, e.TicketID)
			}
		}
		if e.RunID != "" && processorType(e.Type) {
			rp := progress[e.RunID]
			if rp == nil {
				rp = &runProgress{}
				progress[e.RunID] = rp
			}
			if rp.ended {
				afterTerminal++
				example(&afterEx, r)
			}
			switch p := r.payload.(type) {
			case *events.StepStartedData:
				k := stepKey{p.Iteration, stepIndex[p.Step], p.Attempt}
				if rp.any && !less(rp.max, k) {
					staleSteps++ // a start at or behind where the run already was: no handover shown
					example(&staleEx, r)
				}
				if !rp.any || less(rp.max, k) {
					rp.max = k
				}
				rp.lastStarted, rp.any = k, true
			case *events.StepCompletedData:
				k := stepKey{p.Iteration, stepIndex[p.Step], p.Attempt}
				if !rp.any || k != rp.lastStarted {
					staleSteps++ // completing an attempt that is not the run's current one
					example(&staleEx, r)
				}
			}
		}
		if terminalType(e.Type) && e.RunID != "" {
			rp := progress[e.RunID]
			if rp == nil {
				rp = &runProgress{}
				progress[e.RunID] = rp
			}
			rp.ended = true
		}
	}
	// Every record, copies included, is a message a client may legitimately receive: the
	// stream is judged against the whole log (a copy then shows as a duplicate event id).
	perTicket := map[string][]int64{} // deliverable offsets in log order
	hasRun := map[string]bool{}
	for _, r := range recs {
		if r.env.Type == events.TicketProcessingRequested {
			hasRun[r.env.TicketID] = true
		}
		if deliverable(r) {
			perTicket[r.env.TicketID] = append(perTicket[r.env.TicketID], r.offset)
		}
	}

	dupIDs, dupCopies := 0, 0
	for _, n := range byID {
		if n > 1 {
			dupIDs++
			dupCopies += n - 1
		}
	}
	var dupNote []string
	for t, n := range dupTypes {
		dupNote = append(dupNote, fmt.Sprintf("%s×%d", t, n))
	}
	sort.Strings(dupNote)

	led.mu.Lock()
	defer led.mu.Unlock()
	lost, lostNote := 0, map[string]int{}
	for id := range led.tickets {
		if !ticketCreated[id] {
			lost++
			lostNote["ticket"]++
		}
	}
	noTerminal, multiTerminal, startedTwice, endedUnstarted := 0, 0, 0, 0
	for run := range led.accepted {
		f := runs[run]
		if f == nil || len(f.requested) == 0 {
			lost++
			lostNote["start"]++
			continue
		}
		switch n := len(f.terminal); {
		case n == 0:
			noTerminal++
		case n > 1:
			multiTerminal++
		}
		if len(f.started) > 1 {
			startedTwice++
		}
	}
	for _, runs := range led.validations {
		for _, run := range runs {
			if !approved[run] {
				lost++
				lostNote["approve"]++
			}
		}
	}
	for run := range led.changes {
		if !changesOn[run] {
			lost++
			lostNote["request_changes"]++
		}
	}
	logRunsNotOne := 0
	for _, f := range runs {
		if len(f.requested) > 0 && len(f.terminal) != 1 {
			logRunsNotOne++
		}
		if len(f.terminal) == 1 && len(f.started) == 0 {
			endedUnstarted++ // rejected (or cancelled before it started): information only
		}
	}
	info["runs in log"] = len(runs)
	info["runs ended without starting (rejected)"] = endedUnstarted

	// WebSocket streams: per client, each delivery must be the next deliverable record of
	// its ticket after the previous one, and no event id may arrive twice.
	wsDup, wsGap, wsOrder, wsTail, wsUnknown, wsDeliveries, wsUnavailable := 0, 0, 0, 0, 0, 0, 0
	for _, c := range clients {
		offs := perTicket[c.ticketID]
		pos := make(map[int64]int, len(offs))
		for i, o := range offs {
			pos[o] = i
		}
		seen := map[string]bool{}
		prev := -1
		c.mu.Lock()
		got := append([]wsDelivery(nil), c.got...)
		wsUnavailable += c.unavailable
		c.mu.Unlock()
		for _, d := range got {
			if d.unavail {
				prev = -1
				continue
			}
			idx, ok := pos[d.offset]
			if !ok {
				wsUnknown++
				continue
			}
			if d.snapshot {
				prev = idx
				continue
			}
			wsDeliveries++
			if seen[d.eventID] {
				wsDup++
			}
			seen[d.eventID] = true
			if prev >= 0 {
				switch {
				case idx <= prev:
					wsOrder++
				case idx > prev+1:
					wsGap += idx - prev - 1
				}
			}
			prev = idx
		}
		if hasRun[c.ticketID] && prev != len(offs)-1 {
			wsTail++
		}
	}
	info["websocket deliveries"] = wsDeliveries
	info["websocket history_unavailable"] = wsUnavailable

	inv := []invariant{
		{name: "2xx answers lost (not in the log)", count: lost, hard: true, note: fmtMap(lostNote)},
		{name: "accepted runs without a terminal event (not recovered)", count: noTerminal, hard: true},
		{name: "accepted runs with >1 terminal event", count: multiTerminal, hard: true, note: strings.Join(multiEx, "; ")},
		{name: "accepted runs started twice (RunStarted ×2)", count: startedTwice, hard: true},
		{name: "runs in the log without exactly one terminal", count: logRunsNotOne, hard: true},
		{name: "event ids appended twice (ids / extra copies)", count: dupCopies, hard: true, note: fmt.Sprintf("%d ids; %s%s", dupIDs, strings.Join(dupNote, " "), known(dupCopies, "idempotent retry re-appends (#9.1, command)"))},
		{name: "runs of one ticket active at the same time", count: overlapping, hard: true},
		{name: "steps appended behind a newer attempt (zombie, no handover)", count: staleSteps, hard: true, note: strings.Join(staleEx, "; ")},
		{name: "processor events after the run's terminal event", count: afterTerminal, hard: true, note: strings.Join(afterEx, "; ")},
		{name: "websocket duplicate event ids", count: wsDup, hard: true, note: known(wsDup, "the log's copies delivered as the log holds them (#9.1); one record delivered twice counts as out-of-order")},
		{name: "websocket gaps (missing messages)", count: wsGap, hard: true},
		{name: "websocket out-of-order messages", count: wsOrder, hard: true},
		{name: "websocket cursors not of the ticket's log", count: wsUnknown, hard: true},
		{name: "websocket clients not caught up at the end", count: wsTail, hard: true},
	}
	return inv, info
}

func fmtMap(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s:%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// checkAudit reads every ticket's audit trail (NDJSON) and compares it with the log.
func checkAudit(ctx context.Context, a *api, recs []logRecord, tickets []string) invariant {
	want := map[string]map[string]bool{}
	for _, r := range recs {
		if want[r.env.TicketID] == nil {
			want[r.env.TicketID] = map[string]bool{}
		}
		want[r.env.TicketID][r.env.ID] = true
	}
	rng := rand.New(rand.NewPCG(1, 1))
	dups, missing, extra, errs := 0, 0, 0, 0
	for _, id := range tickets {
		var body []byte
		if err := a.get(ctx, rng, "/api/tickets/"+id+"/events?format=ndjson", &body); err != nil {
			errs++
			continue
		}
		seen := map[string]bool{}
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var env struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(sc.Bytes(), &env) != nil || env.ID == "" {
				continue
			}
			if seen[env.ID] {
				dups++
			}
			seen[env.ID] = true
			if !want[id][env.ID] {
				extra++
			}
		}
		for e := range want[id] {
			if !seen[e] {
				missing++
			}
		}
	}
	return invariant{name: "audit trails: duplicate + missing + foreign ids", count: dups + missing + extra + errs, hard: true,
		note: fmt.Sprintf("dup:%d missing:%d foreign:%d unreadable:%d", dups, missing, extra, errs)}
}

// checkFeedback: every review comment reaches the processor's conversation once. Each review
// the clients send has its own text, so one text stored twice for a ticket is a copy.
func checkFeedback(ctx context.Context, db *pgxpool.Pool) invariant {
	var copies int
	err := db.QueryRow(ctx, `SELECT coalesce(sum(n - 1), 0) FROM (
		SELECT count(*) AS n FROM processor_feedback GROUP BY ticket_id, comment HAVING count(*) > 1) AS doubled`).Scan(&copies)
	if err != nil {
		return invariant{name: "review comments stored more than once", count: 1, hard: true, note: err.Error()}
	}
	return invariant{name: "review comments stored more than once", count: copies, hard: true,
		note: known(copies, "ChangesRequested applied again on redelivery (#9.1, processor)")}
}

// projected waits until the live projector has applied the log up to ends.
func waitProjected(ctx context.Context, db *pgxpool.Pool, kcfg config.Kafka, timeout time.Duration) error {
	cl, err := kafka.NewClient(kcfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, kcfg.Topic)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		behind := 0
		ends.Each(func(o kadm.ListedOffset) {
			var next int64
			_ = db.QueryRow(ctx, `SELECT next_offset FROM consumer_offsets WHERE consumer = 'projector' AND topic = $1 AND partition = $2`,
				kcfg.Topic, o.Partition).Scan(&next)
			if next < o.Offset {
				behind++
			}
		})
		if behind == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("projector still behind on %d partitions after %s", behind, timeout)
		}
		sleep(ctx, 250*time.Millisecond)
	}
}

// reproject folds the whole log into a fresh database with the projector's own code (a new
// consumer group) and compares every projection table row by row with the live one.
func reproject(ctx context.Context, live, fresh *pgxpool.Pool, kcfg config.Kafka, group string) ([]invariant, error) {
	cfg, err := config.Load[projector.Config]()
	if err != nil {
		return nil, err
	}
	cfg.Group, cfg.InstanceID = group, ""
	proj := projector.New(cfg, projector.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DB: fresh, Kafka: kcfg, Registry: prometheus.NewRegistry()})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- proj.Run(rctx) }()
	err = waitProjected(ctx, fresh, kcfg, 120*time.Second)
	cancel()
	if rerr := <-done; rerr != nil && err == nil && rctx.Err() == nil {
		err = rerr
	}
	if err != nil {
		return nil, fmt.Errorf("re-projection: %w", err)
	}
	tables := []struct{ name, key, query string }{
		{"tickets", "id", `SELECT id, to_jsonb(t)::text FROM tickets t`},
		{"runs", "id", `SELECT id, to_jsonb(r)::text FROM runs r`},
		{"step_runs", "", `SELECT run_id || '/' || iteration || '/' || step || '/' || attempt, to_jsonb(s)::text FROM step_runs s`},
		{"ticket_events", "", `SELECT event_id::text, (to_jsonb(e) - 'recorded_at')::text FROM ticket_events e`},
	}
	var out []invariant
	for _, tb := range tables {
		a, err := rowsByKey(ctx, live, tb.query)
		if err != nil {
			return nil, fmt.Errorf("live %s: %w", tb.name, err)
		}
		b, err := rowsByKey(ctx, fresh, tb.query)
		if err != nil {
			return nil, fmt.Errorf("re-projected %s: %w", tb.name, err)
		}
		diff, example := 0, ""
		for k, v := range a {
			if b[k] != v {
				diff++
				if example == "" {
					example = fmt.Sprintf("e.g. %s live=%.200s fresh=%.200s", k, v, b[k])
				}
			}
		}
		for k := range b {
			if _, ok := a[k]; !ok {
				diff++
			}
		}
		out = append(out, invariant{name: "projection " + tb.name + " rows ≠ re-projection", count: diff, hard: true,
			note: fmt.Sprintf("%d rows; %s", len(a), example)})
	}
	return out, nil
}

func rowsByKey(ctx context.Context, db *pgxpool.Pool, q string) (map[string]string, error) {
	rows, err := db.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, rows.Err()
}

// known names the bug a violation is already filed as, for the reader of the summary.
func known(n int, bug string) string {
	if n == 0 {
		return ""
	}
	return " [known bug: " + bug + "]"
}

func stepOf(p events.Payload) string {
	switch p := p.(type) {
	case *events.StepStartedData:
		return fmt.Sprintf("%s it%d attempt%d", p.Step, p.Iteration, p.Attempt)
	case *events.StepCompletedData:
		return fmt.Sprintf("%s it%d attempt%d %s", p.Step, p.Iteration, p.Attempt, p.Outcome)
	case *events.LogEmittedData:
		return p.Step
	}
	return ""
}
