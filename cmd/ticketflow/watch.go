package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/ticketflow/ticketflow/cmd/ticketflow/client"
	"golang.org/x/term"
)

// watchRun follows a ticket's current run until a terminal status and returns the exit code
// as an *exitError (nil for 0). On a terminal: a live block redrawn in place, with log lines
// scrolling above it; otherwise plain lines (or, with asJSON, one JSON message per line).
func watchRun(ctx context.Context, cmd *cobra.Command, c *client.Client, ticket string, asJSON bool) error {
	w := cmd.OutOrStdout()
	errw := cmd.ErrOrStderr()
	tty := !asJSON && isTerminal(w)
	v := newRunView(ticket)
	var tv *termView
	if tty {
		tv = &termView{w: w, v: v, width: termWidth(w)}
		stop := tv.animate()
		defer stop()
	}
	final := ""
	err := c.Watch(ctx, ticket, client.WatchOptions{
		OnReconnect: func(attempt int, delay time.Duration, cause error) {
			note := fmt.Sprintf("connection lost (%v); reconnecting in %s (attempt %d)", cause, delay.Round(time.Millisecond), attempt)
			if tv != nil {
				tv.note(note)
			} else {
				fmt.Fprintln(errw, "note  "+note)
			}
		},
	}, func(m client.Message) error {
		switch {
		case asJSON:
			if m.Type != "connected" && m.Type != "replay_complete" {
				if err := json.NewEncoder(w).Encode(m); err != nil {
					return err
				}
			}
		case tv != nil:
			tv.apply(m)
		default:
			if line := plainLine(m); line != "" {
				if _, err := fmt.Fprintln(w, line); err != nil {
					return err
				}
			}
		}
		if m.Terminal() {
			final = m.Status
			return client.ErrStop
		}
		return nil
	})
	if tv != nil {
		tv.finish()
	}
	if err != nil {
		return err
	}
	if final == "" {
		return &exitError{code: exitFailed, err: fmt.Errorf("watch of %s ended before the run did", ticket)}
	}
	if code := exitCode(final); code != exitOK {
		return &exitError{code: code}
	}
	return nil
}

// termWidth is the width of the terminal w (0 if unknown).
func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil {
			return cols
		}
	}
	return 0
}

// termView draws a runView on a terminal with ANSI cursor movement.
type termView struct {
	mu     sync.Mutex
	w      io.Writer
	v      *runView
	frame  int
	width  int // terminal columns (0: unknown)
	drawn  int // lines of the block currently on screen
	notice string
	ended  bool
}

// clearBlock moves to the first line of the drawn block and clears to the end of the screen.
func (t *termView) clearBlock(b *strings.Builder) {
	if t.drawn > 0 {
		fmt.Fprintf(b, "\x1b[%dA", t.drawn)
	}
	b.WriteString("\r\x1b[J")
	t.drawn = 0
}

func (t *termView) draw(b *strings.Builder) {
	block := t.v.render(t.frame)
	if t.notice != "" {
		block += "  " + t.notice + "\n"
	}
	block = fitWidth(block, t.width)
	b.WriteString(block)
	t.drawn = strings.Count(block, "\n")
}

// fitWidth cuts every line of block to width-1 columns (runes), so that no line wraps and
// the cursor movement of the next redraw stays exact. width <= 0 leaves block as it is.
func fitWidth(block string, width int) string {
	if width <= 0 {
		return block
	}
	lines := strings.SplitAfter(block, "\n")
	for i, l := range lines {
		body := strings.TrimSuffix(l, "\n")
		if r := []rune(body); len(r) > width-1 {
			lines[i] = string(r[:max(width-1, 0)]) + l[len(body):]
		}
	}
	return strings.Join(lines, "")
}

func (t *termView) apply(m client.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	t.clearBlock(&b)
	t.v.apply(m)
	t.notice = ""
	if m.Type == "log" || m.Type == "agent_tool" {
		b.WriteString(logLine(m) + "\n")
	}
	t.draw(&b)
	_, _ = io.WriteString(t.w, b.String())
}

func (t *termView) note(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.notice = s
	t.redrawLocked()
}

func (t *termView) redrawLocked() {
	if t.ended {
		return
	}
	var b strings.Builder
	t.clearBlock(&b)
	t.draw(&b)
	_, _ = io.WriteString(t.w, b.String())
}

// animate turns the spinner until the returned stop is called.
func (t *termView) animate() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(120 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				t.mu.Lock()
				t.frame++
				t.redrawLocked()
				t.mu.Unlock()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// finish draws the final block once more and stops redrawing.
func (t *termView) finish() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.redrawLocked()
	t.ended = true
}
