package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/ticketflow/ticketflow/api/apitest"
	"github.com/ticketflow/ticketflow/libs/cursor"
)

// api is an HTTP client as a real one behaves: each request picks a command replica, and a
// 5xx, a timeout or a refused connection is retried on another replica with the same
// Idempotency-Key until the request's budget runs out.
type api struct {
	urls   []string
	token  string
	client *http.Client
	budget time.Duration

	retries atomic.Int64
	calls   atomic.Int64 // HTTP requests sent, retries and GETs included
	mu      sync.Mutex
	codes   map[int]int // final answers by status (0 = gave up)
}

// Every answer it gets is checked against api/openapi.yaml (apitest.Transport).
func newAPI(t testing.TB, urls []string, token string) *api {
	return &api{urls: urls, token: token, budget: 75 * time.Second, codes: map[int]int{},
		client: &http.Client{Timeout: 12 * time.Second, Transport: apitest.Transport(t, nil)}}
}

type answer struct {
	status int
	body   []byte
}

func (a answer) errorCode() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(a.body, &e)
	return e.Error.Code
}

// post sends one logical request (one key) starting at replica first. It returns the first
// final answer: 2xx or a 4xx other than "request_in_progress" (the key's first attempt is
// still unfinished: a real client waits and retries too). status 0: no final answer in time.
func (a *api) post(ctx context.Context, rng *rand.Rand, first int, path string, body any, key string) answer {
	raw, _ := json.Marshal(body)
	deadline := time.Now().Add(a.budget)
	replica := first
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			a.retries.Add(1)
			replica = rng.IntN(len(a.urls))
			sleep(ctx, time.Duration(50+rng.IntN(250))*time.Millisecond)
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			a.count(0)
			return answer{}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.urls[replica]+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+a.token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		a.calls.Add(1)
		resp, err := a.client.Do(req)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ans := answer{resp.StatusCode, b}
		if resp.StatusCode == http.StatusTooManyRequests {
			// Rate-limited (nothing written): wait as told and send the same request again.
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			sleep(ctx, time.Duration(max(wait, 1))*time.Second)
			continue
		}
		if resp.StatusCode >= 500 || (resp.StatusCode == http.StatusConflict &&
			(ans.errorCode() == "request_in_progress" || ans.errorCode() == "request_superseded")) {
			continue
		}
		a.count(resp.StatusCode)
		return ans
	}
}

func (a *api) count(status int) {
	a.mu.Lock()
	a.codes[status]++
	a.mu.Unlock()
}

// get reads a JSON document from any replica that answers, within ctx.
func (a *api) get(ctx context.Context, rng *rand.Rand, path string, out any) error {
	var last error
	for attempt := 0; attempt < 20 && ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			sleep(ctx, 200*time.Millisecond)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.urls[rng.IntN(len(a.urls))]+path, nil)
		req.Header.Set("Authorization", "Bearer "+a.token)
		a.calls.Add(1)
		resp, err := a.client.Do(req)
		if err != nil {
			last = err
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
			continue
		}
		if s, ok := out.(*[]byte); ok {
			*s = b
			return nil
		}
		return json.Unmarshal(b, out)
	}
	if last == nil {
		last = ctx.Err()
	}
	return last
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

type ticketView struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	CurrentRunID string `json:"current_run_id"`
}

func activeStatus(s string) bool { return s == "PENDING" || s == "IN_PROGRESS" }

// ledger is everything the clients were told: what must be in the log.
type ledger struct {
	mu           sync.Mutex
	tickets      map[string]bool     // 201 answers
	accepted     map[string]string   // run id → ticket id, from 2xx starts and request_changes
	validations  map[string][]string // ticket id → ids of validated runs (2xx approve)
	changes      map[string]string   // run id the changes were requested on → next run id
	concurrent   int                 // concurrent starts through two replicas
	bothAccepted int                 // ... where both replicas answered 2xx
	startsSent   int
	gaveUp       int // requests without a final answer (counted, they may or may not be in the log)
}

func newLedger() *ledger {
	return &ledger{tickets: map[string]bool{}, accepted: map[string]string{}, validations: map[string][]string{}, changes: map[string]string{}}
}

func (l *ledger) acceptedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accepted)
}

func (l *ledger) accept(runID, ticketID string) {
	l.mu.Lock()
	l.accepted[runID] = ticketID
	l.mu.Unlock()
}

type startAnswer struct {
	RunID  string `json:"run_id"`
	Status string `json:"status"`
}

// workload drives tickets through runs: start, wait for the run's end, sometimes request
// changes (a new run) or approve, again; now and then the same ticket is started through two
// replicas at once.
type workload struct {
	api    *api
	led    *ledger
	pool   chan string
	target int
	// enough is closed when the fault schedule is done: workers stop once the target is met.
	faultsDone <-chan struct{}
}

func (w *workload) done() bool {
	select {
	case <-w.faultsDone:
		return w.led.acceptedCount() >= w.target
	default:
		return false
	}
}

func (w *workload) worker(ctx context.Context, rng *rand.Rand) {
	for !w.done() && ctx.Err() == nil {
		var id string
		select {
		case id = <-w.pool:
		case <-ctx.Done():
			return
		}
		if w.cycle(ctx, rng, id) {
			w.pool <- id
		}
	}
}

// cycle runs one start (and maybe a review) on a ticket; false takes the ticket out of the
// pool (its run did not end in time: the final checks report it).
func (w *workload) cycle(ctx context.Context, rng *rand.Rand, id string) bool {
	var runs []string
	if rng.IntN(10) == 0 && len(w.api.urls) > 1 {
		runs = w.concurrentStart(ctx, rng, id)
	} else if run := w.start(ctx, rng, rng.IntN(len(w.api.urls)), id); run != "" {
		runs = append(runs, run)
	}
	for _, run := range runs {
		status, current, ok := w.waitEnd(ctx, rng, id, run)
		if !ok {
			return false
		}
		// A review applies to the ticket's current run: only review the run we know is it.
		if status != "COMPLETED" || !current {
			continue
		}
		switch rng.IntN(10) {
		case 0, 1, 2: // request changes: the next iteration is a new run
			key := uuid.NewString()
			ans := w.api.post(ctx, rng, rng.IntN(len(w.api.urls)), "/api/tickets/"+id+"/validation",
				map[string]string{"decision": "request_changes", "comment": "chaos review " + key[:8]}, key)
			var sa startAnswer
			if ans.status/100 == 2 && json.Unmarshal(ans.body, &sa) == nil && sa.RunID != "" {
				w.led.accept(sa.RunID, id)
				w.led.mu.Lock()
				w.led.changes[run] = sa.RunID
				w.led.mu.Unlock()
				if _, _, ok := w.waitEnd(ctx, rng, id, sa.RunID); !ok {
					return false
				}
			}
		case 3, 4:
			ans := w.api.post(ctx, rng, rng.IntN(len(w.api.urls)), "/api/tickets/"+id+"/validation",
				map[string]string{"decision": "approve"}, uuid.NewString())
			if ans.status/100 == 2 {
				w.led.mu.Lock()
				w.led.validations[id] = append(w.led.validations[id], run)
				w.led.mu.Unlock()
			}
		}
	}
	return true
}

func (w *workload) start(ctx context.Context, rng *rand.Rand, replica int, id string) string {
	w.led.mu.Lock()
	w.led.startsSent++
	w.led.mu.Unlock()
	ans := w.api.post(ctx, rng, replica, "/api/tickets/processing/start", map[string]string{"ticket_id": id}, uuid.NewString())
	if ans.status == 0 {
		w.led.mu.Lock()
		w.led.gaveUp++
		w.led.mu.Unlock()
	}
	var sa startAnswer
	if ans.status/100 != 2 || json.Unmarshal(ans.body, &sa) != nil || sa.RunID == "" {
		return ""
	}
	w.led.accept(sa.RunID, id)
	return sa.RunID
}

// concurrentStart starts one ticket through two command replicas at the same moment.
func (w *workload) concurrentStart(ctx context.Context, rng *rand.Rand, id string) []string {
	rngs := []*rand.Rand{rand.New(rand.NewPCG(rng.Uint64(), 1)), rand.New(rand.NewPCG(rng.Uint64(), 2))}
	out := make([]string, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = w.start(ctx, rngs[i], i, id)
		}()
	}
	wg.Wait()
	var runs []string
	for _, r := range out {
		if r != "" {
			runs = append(runs, r)
		}
	}
	w.led.mu.Lock()
	w.led.concurrent++
	if len(runs) == 2 && runs[0] != runs[1] {
		w.led.bothAccepted++
	}
	w.led.mu.Unlock()
	return runs
}

// waitEnd polls the ticket's runs until run is over (a rejected run ends too), then tells
// whether it is the ticket's current run (the one a review applies to).
func (w *workload) waitEnd(ctx context.Context, rng *rand.Rand, id, run string) (status string, current, ok bool) {
	start := time.Now()
	for time.Since(start) < 90*time.Second && ctx.Err() == nil {
		var list struct {
			Runs []struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			} `json:"runs"`
		}
		if err := w.api.get(ctx, rng, "/api/tickets/"+id+"/runs", &list); err == nil {
			for _, r := range list.Runs {
				if r.ID == run && !activeStatus(r.Status) {
					var tv ticketView
					if err := w.api.get(ctx, rng, "/api/tickets/"+id, &tv); err != nil {
						return r.Status, false, true
					}
					return r.Status, tv.CurrentRunID == run && !activeStatus(tv.Status), true
				}
			}
		}
		sleep(ctx, 150*time.Millisecond)
	}
	return "", false, false
}

// wsClient watches one ticket on notifier replicas; whenever its connection ends it resumes
// on another replica from its last cursor, and it records every event-derived message.
type wsClient struct {
	id       int
	ticketID string
	urls     []string
	token    string
	replica  atomic.Int32

	mu          sync.Mutex
	got         []wsDelivery
	cursor      string
	reconnects  int
	dialErrors  int
	unavailable int
	// invalid are the messages received that api/asyncapi.yaml does not allow (first few).
	invalid []string
}

// Invalid is what the client received that the AsyncAPI document does not allow.
func (c *wsClient) Invalid() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.invalid
}

type wsDelivery struct {
	eventID  string
	offset   int64
	snapshot bool // the current state after history_unavailable: a new baseline, not an event
	unavail  bool // history_unavailable marker
}

type wsMessage struct {
	Type     string `json:"type"`
	EventID  string `json:"event_id"`
	Cursor   string `json:"cursor"`
	Snapshot bool   `json:"snapshot"`
}

func (c *wsClient) run(ctx context.Context, rng *rand.Rand) {
	for ctx.Err() == nil {
		r := int(c.replica.Load())
		url := c.urls[r] + "/ws/tickets/" + c.ticketID + "?access_token=" + c.token
		c.mu.Lock()
		if c.cursor != "" {
			url += "&cursor=" + c.cursor
		}
		c.mu.Unlock()
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, _, err := websocket.Dial(dctx, url, nil)
		cancel()
		if err == nil {
			conn.SetReadLimit(1 << 20)
			c.read(ctx, conn)
			conn.CloseNow()
		} else if ctx.Err() == nil {
			c.mu.Lock()
			c.dialErrors++
			c.mu.Unlock()
		}
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		c.reconnects++
		c.mu.Unlock()
		// Another replica, as a load balancer would send a reconnecting browser.
		if len(c.urls) > 1 {
			c.replica.Store(int32((r + 1 + rng.IntN(len(c.urls)-1)) % len(c.urls)))
		}
		sleep(ctx, time.Duration(50+rng.IntN(200))*time.Millisecond)
	}
}

func (c *wsClient) read(ctx context.Context, conn *websocket.Conn) {
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if err := apitest.CheckWSMessage(b); err != nil {
			c.mu.Lock()
			if len(c.invalid) < 5 {
				c.invalid = append(c.invalid, err.Error())
			}
			c.mu.Unlock()
		}
		var m wsMessage
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		switch {
		case m.Type == "history_unavailable":
			c.mu.Lock()
			c.unavailable++
			c.got = append(c.got, wsDelivery{unavail: true})
			c.mu.Unlock()
		case m.Cursor != "" && (m.EventID != "" || m.Snapshot):
			off, ok := singleOffset(m.Cursor)
			if !ok {
				continue
			}
			c.mu.Lock()
			c.got = append(c.got, wsDelivery{eventID: m.EventID, offset: off, snapshot: m.Snapshot})
			c.cursor = m.Cursor
			c.mu.Unlock()
		case m.Type == "replay_complete" && m.Cursor != "":
			// Resuming from here loses nothing: it is where the replay stopped.
			c.mu.Lock()
			if c.cursor == "" {
				c.cursor = m.Cursor
			}
			c.mu.Unlock()
		}
	}
}

func singleOffset(s string) (int64, bool) {
	c, err := cursor.Parse(s)
	if err != nil || len(c) != 1 {
		return 0, false
	}
	for _, o := range c {
		return o, true
	}
	return 0, false
}

func (c *wsClient) lastOffset() (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.got) - 1; i >= 0; i-- {
		if !c.got[i].unavail {
			return c.got[i].offset, true
		}
	}
	return 0, false
}

func replicaCounts(clients []*wsClient, n int) []int {
	counts := make([]int, n)
	for _, c := range clients {
		counts[c.replica.Load()]++
	}
	return counts
}
