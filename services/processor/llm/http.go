package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ticketflow/ticketflow/services/processor/redact"
)

// HTTPConfig is the transport policy shared by the HTTP providers.
type HTTPConfig struct {
	// Timeout bounds one HTTP attempt (default 120 s).
	Timeout time.Duration
	// MaxAttempts is the number of tries on 429, 5xx and network errors (default 4).
	MaxAttempts int
	// Backoff is the first pause between tries, doubled each time, with jitter (default 1 s);
	// a Retry-After header (seconds, capped at 60 s) wins when present.
	Backoff time.Duration
	// Redactor masks the API key in error messages.
	Redactor *redact.Redactor
	// Client overrides the HTTP client (tests).
	Client *http.Client
}

func (c HTTPConfig) withDefaults() HTTPConfig {
	if c.Timeout <= 0 {
		c.Timeout = 120 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 4
	}
	if c.Backoff <= 0 {
		c.Backoff = time.Second
	}
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	return c
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// postJSONCounted sends body to url with headers, retrying transient failures, decodes the
// JSON answer into out and reports how many attempts it made (1 = no retry).
func postJSONCounted(ctx context.Context, cfg HTTPConfig, url string, headers map[string]string, body, out any) (int, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	var last error
	for attempt := 1; ; attempt++ {
		wait, err := postOnce(ctx, cfg, url, headers, payload, out)
		if err == nil {
			return attempt, nil
		}
		last = cfg.Redactor.Error(err)
		if ctx.Err() != nil {
			return attempt, ctx.Err()
		}
		if wait < 0 || attempt >= cfg.MaxAttempts {
			if attempt > 1 {
				return attempt, fmt.Errorf("after %d attempts: %w", attempt, last)
			}
			return attempt, last
		}
		if wait == 0 {
			backoff := cfg.Backoff << (attempt - 1)
			wait = backoff/2 + rand.N(backoff/2+1)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, ctx.Err()
		case <-t.C:
		}
	}
}

// postOnce makes one attempt. wait < 0: do not retry; 0: retry after the backoff; > 0:
// retry after that long (Retry-After).
func postOnce(ctx context.Context, cfg HTTPConfig, url string, headers map[string]string, payload []byte, out any) (time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return -1, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := cfg.Client.Do(req)
	if err != nil {
		return 0, err // network error or attempt timeout: transient
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode/100 != 2 {
		serr := &StatusError{Status: resp.StatusCode, Body: clip(strings.TrimSpace(string(b)), 500)}
		if !retryable(resp.StatusCode) {
			return -1, serr
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			return min(time.Duration(s)*time.Second, 60*time.Second), serr
		}
		return 0, serr
	}
	if err := json.Unmarshal(b, out); err != nil {
		return -1, fmt.Errorf("decode answer: %w", err)
	}
	return 0, nil
}

var errEmptyAnswer = errors.New("the model returned no text")
