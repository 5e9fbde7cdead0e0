package app_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/services/command/app"
	"github.com/ticketflow/ticketflow/services/command/internal/commandtest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// env is commandtest's, with the checks of these tests.
type env struct{ *commandtest.Env }

func newEnv(t *testing.T) *env { return &env{commandtest.New(t, commandtest.DefaultConfig, 0)} }

// copies counts the records in the log carrying each event id of the given type.
func (e *env) copies(typ string) map[string]int {
	n := map[string]int{}
	for _, env := range e.LogEnvelopes() {
		if string(env.Type) == typ {
			n[env.ID]++
		}
	}
	return n
}

// finishRun appends what a processor would for a run that completes, and waits for the
// projection to show the ticket COMPLETED.
func (e *env) finishRun(ticketID, runID string) {
	e.T.Helper()
	var envs []events.Envelope
	for _, p := range []events.Payload{&events.RunStartedData{Iteration: 1, MaxIterations: 3, Executor: "simulated"},
		&events.RunCompletedData{Iteration: 1, Message: "done"}} {
		env, err := events.New(ticketID, runID, "processor", p)
		if err != nil {
			e.T.Fatal(err)
		}
		envs = append(envs, env)
	}
	if _, err := e.Broker.Producer.Append(context.Background(), envs...); err != nil {
		e.T.Fatal(err)
	}
	e.waitStatus(ticketID, "COMPLETED")
}

// finishPendingRun waits for the ticket's run to be PENDING, finishes it (finishRun) and
// returns its id.
func (e *env) finishPendingRun(ticketID string) string {
	e.T.Helper()
	e.waitStatus(ticketID, "PENDING")
	var runID string
	_ = e.DB.QueryRow(context.Background(), `SELECT current_run_id FROM tickets WHERE id = $1`, ticketID).Scan(&runID)
	e.finishRun(ticketID, runID)
	return runID
}

func (e *env) waitStatus(ticketID, status string) {
	e.T.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.Call(e.Alice, "GET", "/api/tickets/"+ticketID, "")
		if r.Body["status"] == status {
			return
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("ticket %s stays %v, want %s", ticketID, r.Body["status"], status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSessionsGone waits until PostgreSQL has ended the sessions of crashed attempts (their
// advisory locks go with them, a moment after the connection closes), as it has long done
// by the time a client retries after a real crash.
func (e *env) waitSessionsGone() {
	e.T.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := e.DB.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
			e.T.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("%d advisory locks still held", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func crashAt(point string) func(string, string, []events.Envelope, func()) bool {
	return func(p, _ string, _ []events.Envelope, _ func()) bool { return p == point }
}

func startBody(id string) string { return `{"ticket_id":"` + id + `"}` }

// ticketAndReplica is a new ticket of Alice's and another instance, whose first attempt
// the tests stop at a fault point.
func (e *env) ticketAndReplica() (string, *commandtest.Replica) {
	e.T.Helper()
	return e.NewTicket(), e.Replica()
}

// caller is an Env or a Replica.
type caller interface {
	Call(token, method, path, body string, headers ...string) commandtest.Reply
}

// startKeyed starts Alice's ticket id through via with an Idempotency-Key.
func (e *env) startKeyed(via caller, id, key string) commandtest.Reply {
	e.T.Helper()
	return via.Call(e.Alice, "POST", "/api/tickets/processing/start", startBody(id), "Idempotency-Key", key)
}

// requireRequestedOnce checks that the TicketProcessingRequested event id is once in the
// log, and no event twice.
func (e *env) requireRequestedOnce(id string) {
	e.T.Helper()
	requireOnce(e.T, e.copies(string(events.TicketProcessingRequested)), id)
	e.requireNoDuplicates()
}

// requireNoDuplicates checks that no event id is twice in the log.
func (e *env) requireNoDuplicates() {
	e.T.Helper()
	n := map[string]int{}
	for _, env := range e.LogEnvelopes() {
		if n[env.ID]++; n[env.ID] > 1 {
			e.T.Fatalf("event %s (%s) is in the log more than once", env.ID, env.Type)
		}
	}
}

func requireOnce(t *testing.T, copies map[string]int, id string) {
	t.Helper()
	if copies[id] != 1 {
		t.Fatalf("event %s is %d times in the log, want once (all: %v)", id, copies[id], copies)
	}
}

// The process dies after the Kafka commit and before the answer is stored; the run even
// finishes before the client retries. The retry (another instance) answers the original 202
// and appends nothing.
func TestRetryAfterCrashBetweenCommitAndAnswer(t *testing.T) {
	e := newEnv(t)
	id, first := e.ticketAndReplica()
	app.SetFaults(first.Cmd.App, crashAt(app.FaultAfterCommit))
	if r := e.startKeyed(first, id, "crash-1"); r.Status != 500 {
		t.Fatalf("crashed attempt answered %d %v", r.Status, r.Body)
	}
	// The run the committed event started goes to its end before the retry arrives.
	current := e.finishPendingRun(id)

	e.waitSessionsGone()
	retry := e.startKeyed(e.Replica(), id, "crash-1")
	if retry.Status != 202 || retry.Body["status"] != "PENDING" || retry.Body["run_id"] != current || retry.Header["Idempotent-Replayed"] != "true" {
		t.Fatalf("retry: %d %v %v, want the original 202 for run %s", retry.Status, retry.Body, retry.Header, current)
	}
	requestEventOf(t, e, current)
	// And the key is answered now: a third attempt replays without looking at the log.
	if again := e.startKeyed(e.Env, id, "crash-1"); again.Status != 202 || again.Body["run_id"] != current {
		t.Fatalf("third attempt: %d %v", again.Status, again.Body)
	}
	e.requireNoDuplicates()
}

// rawAttempt is a first attempt's transaction as a dead or paused process leaves it: begun
// under the key's transactional id, its records produced, not committed.
func rawAttempt(t *testing.T, e *env, tid string, envs []events.Envelope) *kgo.Client {
	t.Helper()
	cl, err := kafka.NewClient(e.Broker.Config, kgo.TransactionalID(tid))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, env := range envs {
		rec, err := kafka.Record(e.Broker.Config.Topic, env, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return cl
}

// The process dies inside the transaction: records produced, commit never sent. The retry
// fences the transactional id (aborting that transaction) and appends once.
func TestRetryAfterCrashInsideTransaction(t *testing.T) {
	e := newEnv(t)
	id, first := e.ticketAndReplica()
	var planned []events.Envelope
	app.SetFaults(first.Cmd.App, func(point, tid string, envs []events.Envelope, _ func()) bool {
		if point != app.FaultAfterClaim {
			return false
		}
		planned = envs
		rawAttempt(t, e, tid, envs)
		return true
	})
	if r := e.startKeyed(first, id, "crash-2"); r.Status != 500 {
		t.Fatalf("crashed attempt answered %d %v", r.Status, r.Body)
	}
	e.waitSessionsGone()
	retry := e.startKeyed(e.Replica(), id, "crash-2")
	if retry.Status != 202 || retry.Body["run_id"] != planned[0].RunID {
		t.Fatalf("retry: %d %v, want 202 for run %s", retry.Status, retry.Body, planned[0].RunID)
	}
	// The aborted attempt left nothing to find: the retry appended, it did not replay.
	if retry.Header["Idempotent-Replayed"] == "true" {
		t.Fatalf("retry replayed the crashed attempt's answer although its transaction was aborted: %v", retry.Header)
	}
	e.requireRequestedOnce(planned[0].ID)
}

// A first attempt paused (a zombie: its database session gone, its transaction open) while
// the client retries elsewhere; when it wakes up and commits, the commit fails.
func TestZombieAttemptIsFenced(t *testing.T) {
	e := newEnv(t)
	id, first := e.ticketAndReplica()
	var retry commandtest.Reply
	var zombieCommit error
	var planned []events.Envelope
	app.SetFaults(first.Cmd.App, func(point, tid string, envs []events.Envelope, dropSession func()) bool {
		if point != app.FaultAfterClaim {
			return false
		}
		planned = envs
		dropSession()
		zombie := rawAttempt(t, e, tid, envs)
		e.waitSessionsGone()
		retry = e.startKeyed(e.Replica(), id, "zombie-1")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		zombieCommit = zombie.EndTransaction(ctx, kgo.TryCommit)
		return true
	})
	e.startKeyed(first, id, "zombie-1")
	if retry.Status != 202 || retry.Body["run_id"] != planned[0].RunID {
		t.Fatalf("retry: %d %v", retry.Status, retry.Body)
	}
	if zombieCommit == nil {
		t.Fatal("the zombie attempt committed after the retry took over")
	}
	e.requireRequestedOnce(planned[0].ID)
}

// The same with the service's own producer: the first attempt, paused after its claim,
// resumes after the retry answered; its append is refused as superseded.
func TestZombieServiceAttemptIsSuperseded(t *testing.T) {
	e := newEnv(t)
	id, first := e.ticketAndReplica()
	var retry commandtest.Reply
	app.SetFaults(first.Cmd.App, func(point, _ string, _ []events.Envelope, dropSession func()) bool {
		if point == app.FaultAfterClaim {
			dropSession()
			e.waitSessionsGone()
			retry = e.startKeyed(e.Replica(), id, "zombie-2")
		}
		return false
	})
	zombie := e.startKeyed(first, id, "zombie-2")
	if retry.Status != 202 {
		t.Fatalf("retry: %d %v", retry.Status, retry.Body)
	}
	if zombie.Status != 409 || zombie.Code() != "request_superseded" {
		t.Fatalf("zombie attempt: %d %v, want 409 request_superseded", zombie.Status, zombie.Body)
	}
	requestEventOf(t, e, retry.Body["run_id"].(string))
	e.requireNoDuplicates()
}

// atOnce makes the n calls concurrently and returns their replies, in call order.
func atOnce(n int, call func(i int) commandtest.Reply) []commandtest.Reply {
	replies := make([]commandtest.Reply, n)
	var wg sync.WaitGroup
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = call(i)
		}()
	}
	wg.Wait()
	return replies
}

// Identical requests with one key, at once, on two replicas: one append, every answer a
// 202 or 409 request_in_progress, and the key then replays the 202.
func TestConcurrentKeyedRequestsOnTwoReplicas(t *testing.T) {
	e := newEnv(t)
	id := e.NewTicket()
	replicas := []*commandtest.Replica{e.Replica(), e.Replica()}
	replies := atOnce(8, func(i int) commandtest.Reply { return e.startKeyed(replicas[i%2], id, "same") })
	accepted := 0
	for _, r := range replies {
		switch {
		case r.Status == 202:
			accepted++
		case r.Status == 409 && r.Code() == "request_in_progress":
		default:
			t.Fatalf("answer %d %v", r.Status, r.Body)
		}
	}
	if accepted == 0 {
		t.Fatal("no attempt was accepted")
	}
	final := e.startKeyed(replicas[0], id, "same")
	if final.Status != 202 {
		t.Fatalf("final retry: %d %v", final.Status, final.Body)
	}
	copies := e.copies(string(events.TicketProcessingRequested))
	if len(copies) != 1 {
		t.Fatalf("%d distinct start events, want 1: %v", len(copies), copies)
	}
	requireOnce(t, copies, firstKey(copies))
	e.requireNoDuplicates()
}

func firstKey(m map[string]int) string {
	for k := range m {
		return k
	}
	return ""
}

// request_changes crashes after its commit; the next run then completes too, so the ticket
// is COMPLETED again on another run when the client retries. The retry answers the original
// 202 and appends neither a second ChangesRequested (carrying that other run's id) nor a
// second request.
func TestChangesRequestedRetryAfterCrash(t *testing.T) {
	e := newEnv(t)
	id := e.NewTicket()
	start := e.Call(e.Alice, "POST", "/api/tickets/processing/start", startBody(id))
	if start.Status != 202 {
		t.Fatalf("start: %d %v", start.Status, start.Body)
	}
	run1 := start.Body["run_id"].(string)
	e.finishRun(id, run1)

	first := e.Replica()
	app.SetFaults(first.Cmd.App, crashAt(app.FaultAfterCommit))
	body := `{"decision":"request_changes","comment":"rename it"}`
	if r := first.Call(e.Alice, "POST", "/api/tickets/"+id+"/validation", body, "Idempotency-Key", "changes-1"); r.Status != 500 {
		t.Fatalf("crashed attempt answered %d %v", r.Status, r.Body)
	}
	run2 := e.finishPendingRun(id)

	e.waitSessionsGone()
	retry := e.Replica().Call(e.Alice, "POST", "/api/tickets/"+id+"/validation", body, "Idempotency-Key", "changes-1")
	if retry.Status != 202 || retry.Body["run_id"] != run2 || retry.Header["Idempotent-Replayed"] != "true" {
		t.Fatalf("retry: %d %v, want the original 202 for run %s", retry.Status, retry.Body, run2)
	}
	changes := e.copies(string(events.ChangesRequested))
	if len(changes) != 1 {
		t.Fatalf("ChangesRequested events: %v, want exactly one", changes)
	}
	requireOnce(t, changes, firstKey(changes))
	requestEventOf(t, e, run2)
	for _, env := range e.LogEnvelopes() {
		if env.Type == events.ChangesRequested && env.RunID != run1 {
			t.Fatalf("ChangesRequested carries run %s, want %s", env.RunID, run1)
		}
	}
	e.requireNoDuplicates()
}

// requestEventOf checks that exactly one TicketProcessingRequested started run and returns its id.
func requestEventOf(t *testing.T, e *env, run string) string {
	t.Helper()
	n := 0
	var id string
	for _, env := range e.LogEnvelopes() {
		if env.Type == events.TicketProcessingRequested && env.RunID == run {
			n++
			id = env.ID
		}
	}
	if n != 1 {
		t.Fatalf("%d requests for run %s in the log, want 1", n, run)
	}
	return id
}

// The same ticket started at once through two replicas, without keys: exactly one run.
func TestConcurrentStartsOnTwoReplicas(t *testing.T) {
	e := newEnv(t)
	replicas := []*commandtest.Replica{e.Replica(), e.Replica()}
	for range 3 {
		id := e.NewTicket()
		replies := atOnce(2, func(i int) commandtest.Reply {
			return replicas[i].Call(e.Alice, "POST", "/api/tickets/processing/start", startBody(id))
		})
		accepted, conflicts := 0, 0
		for _, r := range replies {
			switch {
			case r.Status == 202:
				accepted++
			case r.Status == 409 && r.Code() == "run_active":
				conflicts++
			default:
				t.Fatalf("answer %d %v", r.Status, r.Body)
			}
		}
		if accepted != 1 || conflicts != 1 {
			t.Fatalf("%d accepted, %d conflicts; want 1 and 1", accepted, conflicts)
		}
		n := 0
		for _, env := range e.LogEnvelopes() {
			if env.Type == events.TicketProcessingRequested && env.TicketID == id {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d start events for ticket %s, want 1", n, id)
		}
	}
	e.requireNoDuplicates()
}
