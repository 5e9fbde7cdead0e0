package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestFloodOfStartsFromOneUser: 256 concurrent starts by one user on 256 of their own tickets
// against `ticketflow dev` with its defaults (pool size, deadlines, write limits). Every request
// is answered (never a hang), the API answers a GET within 2 s afterwards, every accepted run
// completes, and SIGTERM stops the process within its shutdown timeout.
func TestFloodOfStartsFromOneUser(t *testing.T) {
	const n = 256
	// Creating the tickets is set-up, not the flood: the burst lets one user create them all.
	s := startStack(t, "TICKETFLOW_WRITE_BURST=400", "TICKETFLOW_SIM_STEP_DELAY=5ms", "TICKETFLOW_SIM_LOGS_PER_STEP=1")
	tickets := make([]string, n)
	for i := range tickets {
		tickets[i] = s.createTicket(map[string]any{"title": fmt.Sprintf("flood %d", i)})
	}

	// A client timeout far past the request deadline: a hang shows as an error.
	codes := s.startAll(t, tickets, 60*time.Second)
	tally := map[int]int{}
	for _, c := range codes {
		tally[c]++
		if c != 202 && c != 429 && c != 503 && c != 0 {
			t.Errorf("unexpected answer %d to a start", c)
		}
	}
	t.Logf("answers to %d concurrent starts: %v", n, tally)
	if tally[202] == 0 {
		t.Fatal("no start was accepted")
	}

	began := time.Now()
	var me map[string]any
	if code := s.do("GET", "/api/me", nil, &me); code != 200 {
		t.Fatalf("GET /api/me after the flood: %d", code)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("GET after the flood took %s", took)
	}

	// Every accepted run reaches COMPLETED (the simulated executor never fails here).
	deadline := time.Now().Add(3 * time.Minute)
	for i, id := range tickets {
		if codes[i] != 202 {
			continue
		}
		for {
			var tk struct{ Status string }
			s.do("GET", "/api/tickets/"+id, nil, &tk)
			if tk.Status == "COMPLETED" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("ticket %s accepted but still %s", id, tk.Status)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	began = time.Now()
	if !s.proc.Stop(syscall.SIGTERM, 25*time.Second) {
		t.Fatal("ticketflow dev did not stop within 25 s of SIGTERM (shutdown timeout 10 s)")
	}
	t.Logf("stopped %s after SIGTERM", time.Since(began).Round(time.Millisecond))
}

// TestConcurrentStartsDoNotStarveTheProjector: with a pool of 3 connections and 12 starts
// at once, every start holds a connection while it waits for its event to be projected. The
// projector has a pool of its own (as its process would), so the waits end when it catches
// up; sharing the command's pool, it would get no connection and every wait would run to its
// deadline (30 s here, past the test's).
func TestConcurrentStartsDoNotStarveTheProjector(t *testing.T) {
	const n = 12
	s := startStack(t, "DATABASE_MAX_CONNS=3", "TICKETFLOW_PROJECTION_WAIT=30s", "TICKETFLOW_WRITE_RATE=0",
		"TICKETFLOW_SIM_STEP_DELAY=5ms", "TICKETFLOW_SIM_LOGS_PER_STEP=1", "TICKETFLOW_DB_ACQUIRE_TIMEOUT=60s")
	tickets := make([]string, n)
	for i := range tickets {
		tickets[i] = s.createTicket(map[string]any{"title": fmt.Sprintf("starve %d", i)})
	}
	for i, code := range s.startAll(t, tickets, 20*time.Second) {
		if code != 0 && code != http.StatusAccepted {
			t.Errorf("start %d: %d, want 202", i, code)
		}
	}
}

// startAll starts a run of every ticket at once and returns each answer's status (0 for a
// request that was not answered within timeout, reported as an error).
func (s *stack) startAll(t *testing.T, tickets []string, timeout time.Duration) []int {
	client := &http.Client{Timeout: timeout}
	codes := make([]int, len(tickets))
	var wg sync.WaitGroup
	for i := range tickets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(map[string]string{"ticket_id": tickets[i]})
			req, _ := http.NewRequest("POST", "http://"+s.http+"/api/tickets/processing/start", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+s.token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("start %d not answered: %v", i, err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	return codes
}
