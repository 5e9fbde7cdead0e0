package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/gittest"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/sandboxtest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestSecretsNeverReachTheLogOrTheTopic runs the real executor (binary, debug logging) with
// a provider key, a second provider's key and a git token configured. One ticket completes
// (its CI prints its whole environment), one fails because the provider answers 401 with the
// key echoed in its error body. Then every record of the topic (values and headers) and the
// process output are searched for the secrets, raw and base64.
func TestSecretsNeverReachTheLogOrTheTopic(t *testing.T) {
	const (
		anthropicKey = "sk-ant-TEST-5d1c0b2e-never-log-me"
		openaiKey    = "sk-openai-TEST-3f9a-never-log-me"
		gitToken     = "ghp_TEST_token_9c4e_never_log_me"
	)
	var calls atomic.Int32
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("x-api-key") != anthropicKey {
			t.Errorf("provider got key %q", r.Header.Get("x-api-key"))
		}
		if strings.Contains(string(body), "make it fail") {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key `+anthropicKey+`"}}`)
			return
		}
		change, _ := json.Marshal(map[string]any{"summary": "add notes", "edits": []map[string]any{{"path": "notes.txt", "content": "ok\n"}}})
		_ = json.NewEncoder(w).Encode(map[string]any{"type": "message", "role": "assistant", "content": []map[string]any{{"type": "text", "text": string(change)}}})
	}))
	defer llm.Close()

	e := newEnv(t)
	repo, _ := gittest.Origin(t, map[string]string{"README.md": "# repo\n"})
	proc := e.processor(
		"TICKETFLOW_EXECUTOR=real",
		"TICKETFLOW_LOG_LEVEL=debug",
		"TICKETFLOW_WORK_DIR="+sandboxtest.Dir(t), // reachable by the bwrap sandbox's uid
		"TICKETFLOW_FILE_REPO_ROOT="+filepath.Dir(strings.TrimPrefix(repo, "file://")),
		"TICKETFLOW_GIT_TOKEN="+gitToken,
		"ANTHROPIC_API_KEY="+anthropicKey,
		"ANTHROPIC_BASE_URL="+llm.URL,
		"OPENAI_API_KEY="+openaiKey,
		"TICKETFLOW_LLM_MAX_ATTEMPTS=2",
	)
	proc.start()

	ok, failing := uuid.NewString(), uuid.NewString()
	okRun, failRun := uuid.NewString(), uuid.NewString()
	for _, tk := range []struct{ id, run, desc string }{{ok, okRun, "add notes"}, {failing, failRun, "make it fail"}} {
		e.append(events.MustNew(tk.id, "", "user:alice", &events.TicketCreatedData{Title: "secrets", Description: tk.desc, RepositoryURL: repo,
			BaseBranch: "main", CICommand: "env; echo done", Owner: "alice"}),
			events.MustNew(tk.id, tk.run, "user:alice", &events.ProcessingRequestedData{RequestedBy: "alice", Reason: "start"}))
	}
	terminal := map[string]events.Type{}
	deadline := time.Now().Add(90 * time.Second)
	for len(terminal) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("runs did not end: %v", terminal)
		}
		time.Sleep(200 * time.Millisecond)
		for _, ev := range e.readAll() {
			if events.Terminal(ev.Type) {
				terminal[ev.RunID] = ev.Type
			}
		}
	}
	proc.stop(syscall.SIGTERM)
	if terminal[okRun] != events.RunCompleted || terminal[failRun] != events.RunFailed {
		t.Fatalf("terminal events %v: want %s completed and %s failed", terminal, okRun, failRun)
	}
	if n := calls.Load(); n != 2 { // one per run: a 401 is not retried
		t.Errorf("provider called %d times, want 2", n)
	}

	haystacks := map[string]string{"processor output": proc.output()}
	var topic strings.Builder
	for _, rec := range rawRecords(t, e) {
		topic.Write(rec.Value)
		for _, h := range rec.Headers {
			topic.WriteString(h.Key + "=" + string(h.Value) + "\n")
		}
	}
	haystacks["topic"] = topic.String()
	if !strings.Contains(haystacks["topic"], "PATH=") || !strings.Contains(haystacks["topic"], "authentication_error") {
		t.Fatal("the topic lacks the CI environment dump or the provider error: the scan would prove nothing")
	}
	for where, text := range haystacks {
		for _, secret := range []string{anthropicKey, openaiKey, gitToken} {
			for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), secret[len(secret)-16:]} {
				if strings.Contains(text, form) {
					t.Errorf("%s contains a secret (%q)", where, form)
				}
			}
		}
	}
}

func rawRecords(t *testing.T, e *env) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Every byte in the log, aborted transactions (a fenced processor's appends) included:
	// read_uncommitted, with the markers kept so the count of offsets adds up.
	cl, err := kafka.NewClient(e.kafka, kgo.ConsumeTopics(e.kafka.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, e.kafka.Topic)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	var recs []*kgo.Record
	for int64(len(recs)) < total {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read topic: %v", ctx.Err())
		}
		recs = append(recs, fetches.Records()...)
	}
	return recs
}
