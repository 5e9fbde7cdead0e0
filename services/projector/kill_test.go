package main

// The projector is killed (SIGKILL) mid-stream and restarted, repeatedly: afterwards every
// event is in ticket_events exactly once and the projections match the log.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
	"github.com/ticketflow/ticketflow/libs/proctest"
	"github.com/ticketflow/ticketflow/libs/workflow"
	"github.com/ticketflow/ticketflow/services/projector/adapters"
)

func TestProjectorKilledMidStreamLosesAndDoublesNothing(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "projector")
	if err := proctest.Build(context.Background(), "", bin, "."); err != nil {
		t.Fatal(err)
	}
	broker := kafkatest.Start(t, 4)
	kcfg, producer := broker.Config, broker.Producer
	dsn := pgtest.NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// 120 tickets, each with a full run of 25 events, appended in six backlogs.
	const tickets = 120
	var total int
	appendRun := func(i int) {
		id := fmt.Sprintf("ticket-%03d", i)
		run := fmt.Sprintf("run-%03d", i)
		envs := []events.Envelope{
			events.MustNew(id, "", "alice", &events.TicketCreatedData{Title: id, Owner: "alice", BaseBranch: "main"}),
			events.MustNew(id, run, "alice", &events.ProcessingRequestedData{RequestedBy: "alice"}),
			events.MustNew(id, run, "processor", &events.RunStartedData{Iteration: 1}),
		}
		for _, s := range workflow.Steps[:7] {
			envs = append(envs,
				events.MustNew(id, run, "processor", &events.StepStartedData{Step: s.Name, Progress: s.Progress, Iteration: 1, Attempt: 1}),
				events.MustNew(id, run, "processor", &events.LogEmittedData{Level: "INFO", Message: "working on " + s.Name}),
				events.MustNew(id, run, "processor", &events.StepCompletedData{Step: s.Name, Iteration: 1, Attempt: 1, Outcome: "ok", DurationMS: 5}))
		}
		envs = append(envs, events.MustNew(id, run, "processor", &events.RunCompletedData{Iteration: 1}))
		if _, err := producer.Append(ctx, envs...); err != nil {
			t.Fatal(err)
		}
		total += len(envs)
	}
	appended := 0

	proc := &proctest.Process{Name: "projector", Path: bin, Env: append(os.Environ(), "KAFKA_BROKERS="+kcfg.Brokers[0], "KAFKA_PARTITIONS=4",
		"DATABASE_URL="+dsn, "TICKETFLOW_HTTP_ADDR="+proctest.FreeAddr(t), "TICKETFLOW_LOG_LEVEL=warn", "TICKETFLOW_INSTANCE_ID=kill-test")}
	t.Cleanup(func() {
		proc.Stop(syscall.SIGTERM, 20*time.Second)
		if t.Failed() {
			t.Logf("projector output:\n%s", proc.Output())
		}
	})
	db, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func() int {
		var n int
		_ = db.QueryRow(ctx, `SELECT count(*) FROM ticket_events`).Scan(&n)
		return n
	}

	kills := 0
	for round := 0; round < 6; round++ {
		for ; appended < (round+1)*tickets/6; appended++ { // a backlog for it to work through
			appendRun(appended)
		}
		proc.Start(t, "")
		// Kill at a random moment: before it joins, mid-batch, or after it caught up.
		time.Sleep(time.Duration(rand.IntN(250)) * time.Millisecond)
		proc.Stop(syscall.SIGKILL, 20*time.Second)
		kills++
		t.Logf("kill %d: %d/%d events projected", kills, count(), total)
	}
	proc.Start(t, "")
	deadline := time.Now().Add(90 * time.Second)
	for count() < total && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // anything doubled would show up now

	var rows, distinct, offsets int
	if err := db.QueryRow(ctx, `SELECT count(*), count(DISTINCT event_id), count(DISTINCT (partition, "offset")) FROM ticket_events`).Scan(&rows, &distinct, &offsets); err != nil {
		t.Fatal(err)
	}
	if rows != total || distinct != total || offsets != total {
		t.Fatalf("ticket_events rows=%d distinct ids=%d distinct positions=%d, want %d each", rows, distinct, offsets, total)
	}
	var completed, stepRuns, unfinished int
	_ = db.QueryRow(ctx, `SELECT count(*) FROM tickets WHERE status = 'COMPLETED' AND progress = 100`).Scan(&completed)
	_ = db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE finished_at IS NULL) FROM step_runs`).Scan(&stepRuns, &unfinished)
	if completed != tickets || stepRuns != tickets*7 || unfinished != 0 {
		t.Fatalf("completed tickets %d (want %d), step_runs %d (want %d), unfinished %d", completed, tickets, stepRuns, tickets*7, unfinished)
	}
	var next int64
	_ = db.QueryRow(ctx, `SELECT sum(next_offset) FROM consumer_offsets WHERE consumer = $1`, adapters.ConsumerName).Scan(&next)
	if next != int64(total) {
		t.Fatalf("stored offsets sum to %d, want %d", next, total)
	}
}
