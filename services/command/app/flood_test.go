package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/services/command/command"
	"github.com/ticketflow/ticketflow/services/command/internal/commandtest"
)

// 256 concurrent starts from one user on 256 of their own tickets, through a pool of 8
// connections: every request is answered (202, 409, 429 or 503, never a hang), the API
// answers a GET within 2 s afterwards, and every accepted start is exactly once in the log.
// Before the fix, the lock held one connection and the re-read waited for a second: the
// pool deadlocked and every request hung.
func TestFloodOfStartsIsAnswered(t *testing.T) {
	const n = 256
	e := commandtest.New(t, command.Config{ProjectionWait: 3 * time.Second, AppendTimeout: 5 * time.Second,
		RequestTimeout: 8 * time.Second, DBAcquireTimeout: 500 * time.Millisecond, WriteRate: 50, WriteBurst: 128}, 8)

	// The tickets are created straight in the log (a flood of creations is not the point).
	ids := make([]string, n)
	var envs []events.Envelope
	for i := range ids {
		env, err := events.New(fmt.Sprintf("flood-%03d", i), "", "alice", &events.TicketCreatedData{Title: "flood", Owner: "alice", BaseBranch: "main"})
		if err != nil {
			t.Fatal(err)
		}
		ids[i], envs = env.TicketID, append(envs, env)
	}
	if _, err := e.Broker.Producer.Append(context.Background(), envs...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got int
		_ = e.DB.QueryRow(context.Background(), `SELECT count(*) FROM tickets`).Scan(&got)
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tickets projected", got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.Web.Listener(ln) }()
	t.Cleanup(func() { _ = e.Web.Shutdown() })
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	post := func(ticketID string) (int, map[string]any, string, error) {
		req, _ := http.NewRequest("POST", base+"/api/tickets/processing/start", bytes.NewBufferString(startBody(ticketID)))
		req.Header.Set("Authorization", "Bearer "+e.Alice)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, "", err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		return resp.StatusCode, body, resp.Header.Get("Retry-After"), nil
	}

	type answer struct {
		status     int
		body       map[string]any
		retryAfter string
		err        error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var a answer
			a.status, a.body, a.retryAfter, a.err = post(ids[i])
			answers[i] = a
		}()
	}
	wg.Wait()

	accepted := map[string]bool{}
	counts := map[int]int{}
	for i, a := range answers {
		if a.err != nil {
			t.Fatalf("start %d was not answered: %v", i, a.err)
		}
		counts[a.status]++
		switch a.status {
		case 202:
			accepted[a.body["run_id"].(string)] = true
		case 429:
			if a.retryAfter == "" {
				t.Fatalf("429 without Retry-After: %v", a.body)
			}
		case 409, 503:
		default:
			t.Fatalf("start %d: %d %v", i, a.status, a.body)
		}
	}
	t.Logf("answers by status: %v", counts)
	if len(accepted) == 0 {
		t.Fatal("no start was accepted")
	}

	start := time.Now()
	req, _ := http.NewRequest("GET", base+"/api/tickets/"+ids[0], nil)
	req.Header.Set("Authorization", "Bearer "+e.Alice)
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET after the flood: %v %v", resp, err)
	}
	resp.Body.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("GET after the flood took %v", d)
	}

	perRun := map[string]int{}
	for _, env := range e.LogEnvelopes() {
		if env.Type == events.TicketProcessingRequested {
			perRun[env.RunID]++
		}
	}
	for run := range accepted {
		if perRun[run] != 1 {
			t.Fatalf("accepted run %s has %d requests in the log, want 1", run, perRun[run])
		}
	}
	// A 503 means nothing was written (no unconfirmed appends against a healthy broker).
	if len(perRun) != len(accepted) {
		t.Fatalf("%d runs requested in the log, %d accepted", len(perRun), len(accepted))
	}
}
