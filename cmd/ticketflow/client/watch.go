package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/ticketflow/ticketflow/libs/tick"
)

// Message is a server message of /ws/tickets/{id} (the fields the CLI uses; see
// services/notifier/README.md).
type Message struct {
	Type          string `json:"type"`
	TicketID      string `json:"ticket_id"`
	Timestamp     string `json:"timestamp,omitempty"`
	EventID       string `json:"event_id,omitempty"`
	RunID         string `json:"run_id,omitempty"`
	Cursor        string `json:"cursor,omitempty"`
	Status        string `json:"status,omitempty"`
	Message       string `json:"message,omitempty"`
	Step          string `json:"step,omitempty"`
	Progress      *int   `json:"progress,omitempty"`
	Error         string `json:"error,omitempty"`
	Level         string `json:"level,omitempty"`
	Stream        string `json:"stream,omitempty"`
	Passed        *bool  `json:"passed,omitempty"`
	ExitCode      *int   `json:"exit_code,omitempty"`
	DurationMS    int64  `json:"duration_ms,omitempty"`
	Iteration     int    `json:"iteration,omitempty"`
	MaxIterations int    `json:"max_iterations,omitempty"`
	Outcome       string `json:"outcome,omitempty"`
	Code          string `json:"code,omitempty"`
	Resumed       bool   `json:"resumed,omitempty"`
	Snapshot      bool   `json:"snapshot,omitempty"`
	// agent_tool and llm_call messages (the coding agent's tool and model calls).
	AgentStep    int     `json:"agent_step,omitempty"`
	Tool         string  `json:"tool,omitempty"`
	Arguments    string  `json:"arguments,omitempty"`
	Result       string  `json:"result,omitempty"`
	OK           *bool   `json:"ok,omitempty"`
	Provider     string  `json:"provider,omitempty"`
	Model        string  `json:"model,omitempty"`
	InputTokens  int64   `json:"input_tokens,omitempty"`
	OutputTokens int64   `json:"output_tokens,omitempty"`
	CostUSD      float64 `json:"cost_usd,omitempty"`
	LatencyMS    int64   `json:"latency_ms,omitempty"`
	Retries      int     `json:"retries,omitempty"`
}

// Terminal reports whether m ends a run: a status_update COMPLETED, FAILED, CANCELLED or
// VALIDATED.
func (m Message) Terminal() bool {
	if m.Type != "status_update" {
		return false
	}
	switch m.Status {
	case "COMPLETED", "FAILED", "CANCELLED", "VALIDATED":
		return true
	}
	return false
}

// ErrStop returned by a Watch callback ends the watch without error.
var ErrStop = errors.New("stop watching")

// WatchOptions tune Watch.
type WatchOptions struct {
	// Cursor resumes after this cursor on the first connection ("": the current run from its start).
	Cursor string
	// OnReconnect is called before each new attempt after a lost connection (attempt ≥ 1).
	OnReconnect func(attempt int, delay time.Duration, cause error)
	// MinBackoff and MaxBackoff bound the delay between attempts (defaults 200 ms and 10 s).
	MinBackoff, MaxBackoff time.Duration
	// MaxAttempts gives up after this many failed attempts in a row (0: 20).
	MaxAttempts int
}

// fatalClose are close codes after which retrying cannot help.
var fatalClose = map[websocket.StatusCode]string{
	4400: "malformed cursor",
	4403: "not allowed to watch this ticket",
	4404: "ticket not found",
	1003: "the server refused a frame",
	1009: "the server refused a frame",
}

// Watch follows /ws/tickets/{ticketID}: each event-derived message is passed to fn exactly
// once, in order. A dropped connection is reopened with capped exponential backoff and a
// fresh single-use ticket, resuming from the cursor of the last delivered message; a message
// whose event_id was already delivered is skipped. Watch returns when fn returns an error
// (ErrStop: nil), ctx ends, or the server refuses for good.
func (c *Client) Watch(ctx context.Context, ticketID string, opts WatchOptions, fn func(Message) error) error {
	minB, maxB := opts.MinBackoff, opts.MaxBackoff
	if minB <= 0 {
		minB = 200 * time.Millisecond
	}
	if maxB <= 0 {
		maxB = 10 * time.Second
	}
	maxAttempts := opts.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = 20
	}
	cur := opts.Cursor
	seen := map[string]bool{}
	failures := 0
	for {
		delivered, err := c.watchOnce(ctx, ticketID, cur, seen, func(m Message) error {
			if m.Cursor != "" && m.EventID != "" {
				cur = m.Cursor
			}
			return fn(m)
		})
		if errors.Is(err, ErrStop) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var stop *stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		if delivered {
			failures = 0
		}
		failures++
		if failures > maxAttempts {
			return fmt.Errorf("watch %s: giving up after %d attempts: %w", ticketID, maxAttempts, err)
		}
		delay := backoff(failures, minB, maxB)
		if opts.OnReconnect != nil {
			opts.OnReconnect(failures, delay, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// backoff is the delay before attempt n (1-based): min·2^(n-1), capped, with ±20 % jitter.
func backoff(n int, minB, maxB time.Duration) time.Duration {
	d := minB
	for i := 1; i < n && d < maxB; i++ {
		d *= 2
	}
	d = min(d, maxB)
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// stopError wraps an error that ends Watch without a retry.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

func (e *stopError) Unwrap() error { return e.err }

// WSURL is the WebSocket URL of a ticket's stream for base (http → ws, https → wss).
func WSURL(base, ticketID, wsTicket, cursor string) (string, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("server URL %q: scheme must be http or https", base)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/ws/tickets/" + ticketID
	q := url.Values{}
	if wsTicket != "" {
		q.Set("ticket", wsTicket)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// watchOnce runs one connection. delivered reports whether any new message reached fn.
func (c *Client) watchOnce(ctx context.Context, ticketID, cur string, seen map[string]bool, fn func(Message) error) (delivered bool, err error) {
	tk, err := c.WSTicket(ctx)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status < 500 && ae.Status != 429 {
			return false, &stopError{err}
		}
		return false, err
	}
	u, err := WSURL(c.BaseURL, ticketID, tk, cur)
	if err != nil {
		return false, &stopError{err}
	}
	dialCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	conn, resp, err := websocket.Dial(dialCtx, u, nil)
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 429 {
			return false, &stopError{fmt.Errorf("websocket: %w", err)}
		}
		return false, fmt.Errorf("websocket: %w", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(4 << 20)
	// Keep the connection alive: the server closes sockets silent for its idle timeout.
	pingCtx, stopPing := context.WithCancel(ctx)
	defer stopPing()
	go tick.Every(pingCtx, 20*time.Second, func() bool {
		_ = conn.Write(pingCtx, websocket.MessageText, []byte("ping"))
		return true
	})
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			code := websocket.CloseStatus(err)
			if why, ok := fatalClose[code]; ok {
				return delivered, &stopError{fmt.Errorf("ticket %s: %s (close %d)", ticketID, why, code)}
			}
			return delivered, fmt.Errorf("websocket read: %w", err)
		}
		var m Message
		if err := json.Unmarshal(data, &m); err != nil {
			continue
		}
		switch m.Type {
		case "pong":
			continue
		case "error":
			// The close frame follows; its code decides.
			continue
		}
		if m.EventID != "" {
			if seen[m.EventID] {
				continue
			}
			seen[m.EventID] = true
			delivered = true
		}
		if err := fn(m); err != nil {
			return delivered, &stopError{err}
		}
	}
}
