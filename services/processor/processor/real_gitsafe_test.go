package processor

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/gittest"
	"github.com/ticketflow/ticketflow/libs/proctest"
)

func runLog(t *testing.T, evs []events.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		if ev.Type == events.LogEmitted {
			b.WriteString(payload[*events.LogEmittedData](t, ev).Message + "\n")
		}
	}
	return b.String()
}

// Internal addresses are refused before git runs; with the dev allowance, an open port that
// is not a git server and a closed port fail with the same words.
func TestRealRepositoryURLsReachNothingInternal(t *testing.T) {
	h := newHarness(t, realConfig(t))
	for _, url := range []string{"https://127.0.0.1:5432/o/r.git", "https://localhost/o/r.git", "git@169.254.169.254:o/r.git", "https://2130706433/o/r.git"} {
		_, run := h.ticket(url, "true")
		term := h.waitTerminal(run)
		if f := payload[*events.RunFailedData](t, term); term.Type != events.RunFailed || !strings.Contains(f.Error, "repository_url refused") {
			t.Errorf("%s: %s %+v", url, term.Type, f)
		}
	}

	cfg := realConfig(t)
	cfg.Real.Repos.AllowPrivate = true
	dev := newHarness(t, cfg)
	open, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	go func() {
		for {
			c, err := open.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("SSH-2.0-not-git\r\n"))
			_ = c.Close()
		}
	}()
	closedAddr := proctest.FreeAddr(t) // nothing listens there
	var reasons []string
	for _, addr := range []string{open.Addr().String(), closedAddr} {
		_, run := dev.ticket("https://"+addr+"/o/r.git", "true")
		term := dev.waitTerminal(run)
		f := payload[*events.RunFailedData](t, term)
		if term.Type != events.RunFailed || !strings.Contains(f.Error, "repository unreachable") {
			t.Errorf("%s: %s %+v", addr, term.Type, f)
		}
		if log := runLog(t, dev.runEvents(run)); !strings.Contains(log, "Le dépôt est inaccessible (clone refusé ou introuvable)") {
			t.Errorf("%s: run log:\n%s", addr, log)
		}
		_, port, _ := net.SplitHostPort(addr)
		reasons = append(reasons, strings.ReplaceAll(f.Error, port, "PORT"))
	}
	if reasons[0] != reasons[1] {
		t.Errorf("open and closed ports tell apart: %q vs %q", reasons[0], reasons[1])
	}
}

// A CI run plants a post-checkout hook and a core.hooksPath in its clone; the next
// iteration's checkout (call_llm resets the work dir) runs neither, and the run completes.
func TestRealPlantedHooksNeverRun(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "hook-ran")
	plant := `#!/bin/sh
mkdir -p .git/hooks evil
printf '#!/bin/sh\necho ran >> ` + marker + `\n' > .git/hooks/post-checkout
chmod +x .git/hooks/post-checkout
cp .git/hooks/post-checkout evil/post-checkout
printf '[core]\n\thooksPath = %s/evil\n\tfsmonitor = %s/evil/post-checkout\n' "$PWD" "$PWD" >> .git/config
echo planted
`
	h := newHarness(t, realConfig(t))
	url, _ := gittest.Origin(t, map[string]string{"README.md": "# demo\n", "plant.sh": plant})
	_, run := h.ticket(url, `sh plant.sh && test "$TICKETFLOW_ITERATION" -ge 2`)
	term, evs := h.waitCompleted(run)
	if d := payload[*events.RunCompletedData](t, term); d.Iteration != 2 {
		t.Errorf("completed at iteration %d, want 2 (the first CI fails after planting)", d.Iteration)
	}
	if !strings.Contains(runLog(t, evs)+dump(evs), "planted") {
		t.Errorf("the CI did not plant anything:\n%s", dump(evs))
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		b, _ := os.ReadFile(marker)
		t.Fatalf("a planted hook ran: %q", b)
	}
}
