package app

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/services/processor/ci"
)

// A flood of CI output becomes at most the capped number of events, then one LogTruncated
// with the totals; the run still completes and the artifact holds every line.
func TestCIOutputCapAndArtifact(t *testing.T) {
	cfg := realConfig(t)
	cfg.Real.CIMaxLogLines = 100
	h := newHarness(t, cfg)
	url, _ := newOrigin(t, map[string]string{"README.md": "x\n"})
	_, run := h.ticket(url, "seq 1 30000; echo done >&2")
	term := h.waitTerminal(run)
	evs := h.runEvents(run)
	if term.Type != events.RunCompleted {
		t.Fatalf("terminal %s:\n%s", term.Type, dump(evs))
	}
	if !strings.Contains(dump(evs), "ATTENTION : la CI s'exécute sans bac à sable") {
		t.Error("a run with TICKETFLOW_CI_SANDBOX=none has no warning in its log")
	}
	ciLines, truncations := 0, []*events.LogTruncatedData{}
	for _, ev := range evs {
		switch ev.Type {
		case events.LogEmitted:
			if payload[*events.LogEmittedData](t, ev).Stream != "" {
				ciLines++
			}
		case events.LogTruncated:
			truncations = append(truncations, payload[*events.LogTruncatedData](t, ev))
		}
	}
	if ciLines != 100 {
		t.Errorf("%d CI lines as events, want 100", ciLines)
	}
	if len(truncations) != 1 {
		t.Fatalf("%d LogTruncated events, want 1", len(truncations))
	}
	want := events.LogTruncatedData{Step: "run_ci", Iteration: 1, LinesTotal: 30001, BytesTotal: int64(len(seqOutput(30000))) + 5, LinesEmitted: 100, Artifact: "ci-1.log"}
	if *truncations[0] != want {
		t.Errorf("truncation %+v, want %+v", *truncations[0], want)
	}
	var content []byte
	var lines, size int64
	if err := h.db.QueryRow(context.Background(), `SELECT content, lines, size_bytes FROM run_artifacts WHERE run_id = $1 AND name = 'ci-1.log'`, run).
		Scan(&content, &lines, &size); err != nil {
		t.Fatal(err)
	}
	// stdout and stderr are separate pipes: "done" may come anywhere.
	got := strings.Replace(string(content), "done\n", "", 1)
	if got != seqOutput(30000) || lines != 30001 || size != int64(len(content)) {
		t.Errorf("artifact: %d lines, %d bytes, content ok %v", lines, size, got == seqOutput(30000))
	}
}

func seqOutput(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}

func TestCICaptureCaps(t *testing.T) {
	lines := func(texts ...string) []OutputLine {
		out := make([]OutputLine, len(texts))
		for i, s := range texts {
			out[i] = OutputLine{Stream: "stdout", Text: s}
		}
		return out
	}
	// Byte cap: "aaaa\n" is 5 bytes; 12 bytes let two lines through.
	c := newCICapture(100, 12, 18)
	if got := c.add(lines("aaaa", "bbbb")); len(got) != 2 || c.truncated() {
		t.Fatalf("first batch %v", got)
	}
	if got := c.add(lines("cccc", "d")); len(got) != 0 || !c.truncated() {
		t.Fatalf("past the byte cap %v", got)
	}
	if got := c.add(lines("e")); len(got) != 0 {
		t.Fatal("a line after the cap was emitted")
	}
	content, n := c.artifact()
	if !strings.HasPrefix(string(content), "aaaa\nbbbb\ncccc\n") || !strings.Contains(string(content), "artefact coupé à 18 octets") || n != 5 {
		t.Errorf("artifact %q (%d lines)", content, n)
	}
	if c.linesTotal != 5 || c.bytesTotal != 19 || c.linesEmitted != 2 {
		t.Errorf("counts %d %d %d", c.linesTotal, c.bytesTotal, c.linesEmitted)
	}
	// Line cap.
	c = newCICapture(2, 1<<20, 1<<20)
	if got := c.add(lines("1", "2", "3")); len(got) != 2 || !c.truncated() {
		t.Errorf("line cap: %v", got)
	}
}

func TestNetworkAllowed(t *testing.T) {
	patterns := []string{"github.com/acme", "gitlab.example.com", "*/public-*"}
	for url, want := range map[string]bool{
		"https://github.com/acme/app.git":      true,
		"https://GitHub.com/acme/app":          true,
		"git@github.com:acme/app.git":          true,
		"ssh://git@github.com/acme/app":        true,
		"https://github.com/other/app":         false,
		"https://github.com/acmeco/app":        false,
		"https://gitlab.example.com/any/thing": true,
		"https://evil.com/github.com/acme/x":   false,
		"file:///srv/acme/app":                 false,
		"":                                     false,
	} {
		if got := networkAllowed(url, patterns); got != want {
			t.Errorf("%q: %v, want %v", url, got, want)
		}
	}
	if networkAllowed("https://github.com/acme/app", nil) {
		t.Error("no pattern allowed the network")
	}
}

func TestByteSizeAndSecrets(t *testing.T) {
	for in, want := range map[string]int64{"5MiB": 5 << 20, "2GiB": 2 << 30, "1048576": 1 << 20, "64 MiB": 64 << 20, "10K": 10 << 10} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(in)); err != nil || int64(b) != want {
			t.Errorf("%q: %d %v", in, b, err)
		}
	}
	for _, bad := range []string{"", "-1", "five", "1TiB"} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	s := ConfiguredSecrets("jwt-secret-value", "postgres://app:p%40ss-w0rd@db:5432/ticketflow")
	if strings.Join(s, " ") != "jwt-secret-value p@ss-w0rd p%40ss-w0rd p@ss-w0rd" {
		t.Errorf("secrets %q", s)
	}
	if s := ConfiguredSecrets("x", "host=db user=app password=kv-secret dbname=t"); len(s) < 2 || s[1] != "kv-secret" {
		t.Errorf("key=value DSN secrets %q", s)
	}
}

// The redactor masks the shared configuration's secrets too (defence in depth: the sandbox
// keeps them out of reach).
func TestRedactorKnowsConfiguredSecrets(t *testing.T) {
	x, err := NewRealExecutor(RealConfig{WorkDir: t.TempDir(), GitToken: "ghp-token-1234"}, slog.New(slog.DiscardHandler),
		RealDeps{Sandbox: ci.Host{}, Secrets: ConfiguredSecrets("jwt-secret-5678", "postgres://app:db-pass-9012@db/ticketflow")})
	if err != nil {
		t.Fatal(err)
	}
	got := x.red.String("jwt-secret-5678 db-pass-9012 ghp-token-1234 " + base64.StdEncoding.EncodeToString([]byte("jwt-secret-5678")))
	if strings.Contains(got, "5678") || strings.Contains(got, "9012") || strings.Contains(got, "1234") {
		t.Errorf("redacted %q", got)
	}
}
