// Package loadgen holds what the load generators (services/notifier/bench, bench/) share: the
// open-files limit, opening many connections at once, reading WebSocket frames into a reused
// buffer, and the results table.
package loadgen

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"syscall"
)

// RaiseFDLimit lifts the soft open-files limit to the hard limit (20,000 here): each
// connection is a descriptor on both sides. It returns the limit now in force (0 if unknown).
func RaiseFDLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	l.Cur = l.Max
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}

// DialAll opens n connections, dial(ctx, i) making the i-th, with at most limit dials at a
// time. When a dial fails, it still waits for the others, closes (closeConn) every one that
// succeeded and returns the first error; else the n connections, in order.
func DialAll[C any](ctx context.Context, n, limit int, dial func(ctx context.Context, i int) (C, error), closeConn func(C)) ([]C, error) {
	conns := make([]C, n)
	opened := make([]bool, n)
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := dial(ctx, i)
			if err != nil {
				once.Do(func() { first = err })
				return
			}
			conns[i], opened[i] = c, true
		})
	}
	wg.Wait()
	if first != nil {
		for i, c := range conns {
			if opened[i] {
				closeConn(c)
			}
		}
		return nil, first
	}
	return conns, nil
}

// ReadFrame reads one frame's reader r to its end into buf (reused: its capacity grows, its
// contents are replaced) and returns it; the result is valid until buf is reused. A load
// generator with thousands of connections would otherwise allocate per message.
func ReadFrame(buf []byte, r io.Reader) ([]byte, error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// ReadMessage reads the next message of a connection into buf (as ReadFrame does) and returns
// it; reader opens the message, as a github.com/coder/websocket Conn's Reader method does.
func ReadMessage[T any](ctx context.Context, buf []byte, reader func(context.Context) (T, io.Reader, error)) ([]byte, error) {
	_, r, err := reader(ctx)
	if err != nil {
		return buf[:0], err
	}
	return ReadFrame(buf, r)
}

// Table renders a Markdown table, columns padded to their widest cell (in runes: µ, ÷, ×).
func Table(head []string, rows [][]string) string {
	w := make([]int, len(head))
	for _, r := range append([][]string{head}, rows...) {
		for i, c := range r {
			w[i] = max(w[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	line := func(r []string) {
		b.WriteString("|")
		for i, c := range r {
			b.WriteString(" " + c + strings.Repeat(" ", w[i]-len([]rune(c))) + " |")
		}
		b.WriteString("\n")
	}
	line(head)
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = strings.Repeat("-", w[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}
