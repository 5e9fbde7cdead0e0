package executor

import (
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"

	"github.com/ticketflow/ticketflow/services/processor/ci"
)

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

func TestByteSize(t *testing.T) {
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
}

// The redactor masks the shared configuration's secrets too (defence in depth: the sandbox
// keeps them out of reach).
func TestRedactorKnowsConfiguredSecrets(t *testing.T) {
	x, err := NewReal(RealConfig{WorkDir: t.TempDir(), GitToken: "ghp-token-1234"}, slog.New(slog.DiscardHandler),
		RealDeps{Sandbox: ci.Host{}, Secrets: []string{"jwt-secret-5678", "db-pass-9012"}})
	if err != nil {
		t.Fatal(err)
	}
	got := x.red.String("jwt-secret-5678 db-pass-9012 ghp-token-1234 " + base64.StdEncoding.EncodeToString([]byte("jwt-secret-5678")))
	if strings.Contains(got, "5678") || strings.Contains(got, "9012") || strings.Contains(got, "1234") {
		t.Errorf("redacted %q", got)
	}
}
