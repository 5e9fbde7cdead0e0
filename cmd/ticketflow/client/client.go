// Package client is the ticketflow API client used by the CLI: the REST routes of the command
// service (bearer token, Idempotency-Key on writes, the {"error":{code,message}} shape turned
// into an *APIError) and the notifier's WebSocket, resumed by cursor (see watch.go).
package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/services/command/app"
)

// Client talks to one ticketflow deployment.
type Client struct {
	// BaseURL is the server, e.g. http://127.0.0.1:8000 (no trailing slash needed).
	BaseURL string
	// Token is the bearer token (JWT).
	Token string
	// HTTP is the HTTP client; nil means one with a 30 s timeout.
	HTTP *http.Client
}

// New returns a client for baseURL with token.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// APIError is an error answer of the API.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	msg := cmp.Or(e.Message, http.StatusText(e.Status))
	if e.Code == "" {
		return fmt.Sprintf("%s (%d)", msg, e.Status)
	}
	return fmt.Sprintf("%s (%d %s)", msg, e.Status, e.Code)
}

// IsStatus reports whether err is an *APIError with that HTTP status.
func IsStatus(err error, status int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == status
}

// decodeError turns an error response into an *APIError.
func decodeError(status int, body []byte) *APIError {
	var shape struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e := &APIError{Status: status}
	if json.Unmarshal(body, &shape) == nil && (shape.Error.Code != "" || shape.Error.Message != "") {
		e.Code, e.Message = shape.Error.Code, shape.Error.Message
	} else if s := strings.TrimSpace(string(body)); s != "" && len(s) < 200 {
		e.Message = s
	}
	return e
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// request sends one request and returns the response (2xx only; the caller closes the body).
func (c *Client) request(ctx context.Context, method, path string, body any, accept string) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, r)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if method == http.MethodPost {
		// Like the web app: a retry with the same key returns the first answer.
		req.Header.Set("Idempotency-Key", uuid.NewString())
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, decodeError(resp.StatusCode, raw)
	}
	return resp, nil
}

// do sends a request and decodes the JSON answer into out (nil: discarded).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.request(ctx, method, path, body, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// Ticket is a ticket as the API returns it: the command service's own representation.
type Ticket = app.Ticket

// NewTicket is the body of POST /api/tickets.
type NewTicket struct {
	Title           string `json:"title"`
	Description     string `json:"description,omitempty"`
	RepositoryURL   string `json:"repository_url,omitempty"`
	BaseBranch      string `json:"base_branch,omitempty"`
	CICommand       string `json:"ci_command,omitempty"`
	SimulateFailure string `json:"simulate_failure,omitempty"`
}

// Run is one run of a ticket, as the command service returns it.
type Run = app.Run

// StartResult is the answer of POST /api/tickets/processing/start.
type StartResult struct {
	Success      bool   `json:"success"`
	Status       string `json:"status"`
	WebSocketURL string `json:"websocket_url"`
	RunID        string `json:"run_id"`
}

// Me is the bearer's identity.
type Me struct {
	Sub  string `json:"sub"`
	Role string `json:"role"`
}

// EventItem is one entry of the audit trail.
type EventItem struct {
	Cursor    string          `json:"cursor"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Event     json.RawMessage `json:"event"`
}

// Envelope is an event envelope of the audit trail.
type Envelope = events.Envelope

func esc(s string) string { return url.PathEscape(s) }

// Me returns who the token belongs to.
func (c *Client) Me(ctx context.Context) (Me, error) {
	var m Me
	return m, c.do(ctx, http.MethodGet, "/api/me", nil, &m)
}

// ListTickets lists the caller's tickets (every ticket for admins).
func (c *Client) ListTickets(ctx context.Context) ([]Ticket, error) {
	var out struct {
		Tickets []Ticket `json:"tickets"`
	}
	err := c.do(ctx, http.MethodGet, "/api/tickets", nil, &out)
	return out.Tickets, err
}

// CreateTicket creates a ticket.
func (c *Client) CreateTicket(ctx context.Context, t NewTicket) (Ticket, error) {
	var out Ticket
	return out, c.do(ctx, http.MethodPost, "/api/tickets", t, &out)
}

// Ticket returns one ticket.
func (c *Client) Ticket(ctx context.Context, id string) (Ticket, error) {
	var out Ticket
	return out, c.do(ctx, http.MethodGet, "/api/tickets/"+esc(id), nil, &out)
}

// Runs lists a ticket's runs.
func (c *Client) Runs(ctx context.Context, ticketID string) ([]Run, error) {
	var out struct {
		Runs []Run `json:"runs"`
	}
	err := c.do(ctx, http.MethodGet, "/api/tickets/"+esc(ticketID)+"/runs", nil, &out)
	return out.Runs, err
}

// Start starts processing a ticket.
func (c *Client) Start(ctx context.Context, ticketID string) (StartResult, error) {
	var out StartResult
	return out, c.do(ctx, http.MethodPost, "/api/tickets/processing/start", map[string]string{"ticket_id": ticketID}, &out)
}

// Cancel cancels a ticket's active run.
func (c *Client) Cancel(ctx context.Context, ticketID string) (map[string]any, error) {
	var out map[string]any
	return out, c.do(ctx, http.MethodPost, "/api/tickets/"+esc(ticketID)+"/cancel", nil, &out)
}

// Validate approves a completed run ("approve") or asks for changes ("request_changes").
func (c *Client) Validate(ctx context.Context, ticketID, decision, comment string) (map[string]any, error) {
	var out map[string]any
	body := map[string]string{"decision": decision}
	if comment != "" {
		body["comment"] = comment
	}
	return out, c.do(ctx, http.MethodPost, "/api/tickets/"+esc(ticketID)+"/validation", body, &out)
}

// Events returns the whole audit trail of a ticket (runID == "") or of one run, page by page.
func (c *Client) Events(ctx context.Context, ticketID, runID string) ([]EventItem, error) {
	base := "/api/tickets/" + esc(ticketID) + "/events"
	if runID != "" {
		base = "/api/runs/" + esc(runID) + "/events"
	}
	var all []EventItem
	after := ""
	for {
		path := base + "?limit=5000"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		var page struct {
			Events     []EventItem `json:"events"`
			NextCursor *string     `json:"next_cursor"`
		}
		if err := c.do(ctx, http.MethodGet, path, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Events...)
		if page.NextCursor == nil || *page.NextCursor == "" || len(page.Events) == 0 {
			return all, nil
		}
		after = *page.NextCursor
	}
}

// ExportNDJSON copies a ticket's audit trail as NDJSON (one envelope per line) to w.
func (c *Client) ExportNDJSON(ctx context.Context, ticketID string, w io.Writer) error {
	resp, err := c.request(ctx, http.MethodGet, "/api/tickets/"+esc(ticketID)+"/events?format=ndjson", nil, "application/x-ndjson")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// WSTicket asks for a single-use WebSocket ticket.
func (c *Client) WSTicket(ctx context.Context) (string, error) {
	var out struct {
		Ticket string `json:"ticket"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/ws-tickets", nil, &out); err != nil {
		return "", err
	}
	return out.Ticket, nil
}
