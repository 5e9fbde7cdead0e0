package processor

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/gittest"
)

// A flood of CI output becomes at most the capped number of events, then one LogTruncated
// with the totals; the run still completes and the artifact holds every line.
func TestCIOutputCapAndArtifact(t *testing.T) {
	cfg := realConfig(t)
	cfg.Real.CIMaxLogLines = 100
	h := newHarness(t, cfg)
	url, _ := gittest.Origin(t, map[string]string{"README.md": "x\n"})
	_, run := h.ticket(url, "seq 1 30000; echo done >&2")
	_, evs := h.waitCompleted(run)
	if !strings.Contains(dump(evs), "ATTENTION : la CI s'exécute sans bac à sable") {
		t.Error("a run with TICKETFLOW_CI_SANDBOX=none has no warning in its log")
	}
	ciLines, truncations := 0, []*events.LogTruncatedData{}
	for _, ev := range evs {
		switch ev.Type {
		case events.LogEmitted:
			// The run_ci step's lines (the demo agent's own run_ci, in call_llm, is capped apart).
			if l := payload[*events.LogEmittedData](t, ev); l.Stream != "" && l.Step == "run_ci" {
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
