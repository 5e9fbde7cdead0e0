package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ticketflow/ticketflow/libs/loadgen"

	"github.com/coder/websocket"
)

// marker precedes the publish time (Unix ns) in every benchmark payload, for both systems.
const marker = "tsns="

// payloadText is what a benchmark message carries: its publish time.
func payloadText(seq int) string {
	return marker + strconv.FormatInt(time.Now().UnixNano(), 10) + " seq=" + strconv.Itoa(seq)
}

// scanMarkers calls fn with the publish time of every benchmark message in a frame (a
// Centrifugo frame may carry several newline-separated replies).
func scanMarkers(frame []byte, fn func(ns int64)) int {
	n := 0
	for {
		i := bytes.Index(frame, []byte(marker))
		if i < 0 {
			return n
		}
		frame = frame[i+len(marker):]
		var v int64
		j := 0
		for ; j < len(frame) && frame[j] >= '0' && frame[j] <= '9'; j++ {
			v = v*10 + int64(frame[j]-'0')
		}
		frame = frame[j:]
		fn(v)
		n++
	}
}

// client is one WebSocket connection and what its reader recorded.
type client struct {
	c          *websocket.Conn
	buf        []byte
	centrifugo bool // answer Centrifugo's application pings ({} → {})
	delivered  atomic.Int64
	closed     atomic.Bool
	mu         sync.Mutex
	lat        []time.Duration
}

// recording switches latency sampling on for every reader.
var recording atomic.Bool

// dialers spread clients over loopback source addresses so ports never run out.
type dialers struct {
	hcs  []*http.Client
	next atomic.Uint64
}

func newDialers(n int) *dialers {
	d := &dialers{}
	for i := 1; i <= n; i++ {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i))}}
		d.hcs = append(d.hcs, &http.Client{Transport: &http.Transport{DialContext: nd.DialContext}})
	}
	return d
}

func (d *dialers) dial(ctx context.Context, u string) (*websocket.Conn, error) {
	hc := d.hcs[d.next.Add(1)%uint64(len(d.hcs))]
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(64 << 20)
	return c, nil
}

// read returns the next frame (valid until the next read).
func (w *client) read(ctx context.Context) (m []byte, err error) {
	w.buf, err = loadgen.ReadMessage(ctx, w.buf, w.c.Reader)
	return w.buf, err
}

// isPing reports a Centrifugo ping (an empty reply {} on its own line).
func isPing(frame []byte) bool {
	for _, l := range bytes.Split(frame, []byte("\n")) {
		if bytes.Equal(bytes.TrimSpace(l), []byte("{}")) {
			return true
		}
	}
	return false
}

// readForever counts (and, while recording, times) every benchmark message until the
// connection closes. The context has no Done channel (coder/websocket then arms no
// per-read AfterFunc).
func (w *client) readForever() {
	go func() {
		for {
			m, err := w.read(context.Background())
			if err != nil {
				w.closed.Store(true)
				return
			}
			if w.centrifugo && isPing(m) {
				_ = w.c.Write(context.Background(), websocket.MessageText, []byte("{}"))
			}
			rec := recording.Load()
			now := time.Now().UnixNano()
			n := scanMarkers(m, func(ns int64) {
				if rec {
					w.mu.Lock()
					w.lat = append(w.lat, time.Duration(now-ns))
					w.mu.Unlock()
				}
			})
			w.delivered.Add(int64(n))
		}
	}()
}

func totalDelivered(cs []*client) (n, closed int64) {
	for _, c := range cs {
		n += c.delivered.Load()
		if c.closed.Load() {
			closed++
		}
	}
	return n, closed
}

// harvest takes the recorded latencies.
func harvest(cs []*client) []time.Duration {
	var out []time.Duration
	for _, c := range cs {
		c.mu.Lock()
		out = append(out, c.lat...)
		c.lat = nil
		c.mu.Unlock()
	}
	return out
}

func closeAll(cs []*client) {
	for _, c := range cs {
		if c != nil {
			_ = c.c.CloseNow()
		}
	}
}

// connectAll opens n live clients (ticket i%len(tickets)) with bounded dial concurrency.
func connectAll(ctx context.Context, s system, tickets []string, n int) ([]*client, error) {
	cs, err := loadgen.DialAll(ctx, n, 128, func(ctx context.Context, i int) (*client, error) {
		return s.Dial(ctx, tickets[i%len(tickets)])
	}, func(c *client) { _ = c.c.CloseNow() })
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		c.readForever()
	}
	return cs, nil
}

// ticketsWithClients creates tickets tickets (named after prefix) and opens clients live
// clients spread over them.
func ticketsWithClients(ctx context.Context, s system, prefix string, tickets, clients int) ([]string, []*client, error) {
	ids, err := s.Tickets(ctx, prefix, tickets)
	if err != nil {
		return nil, nil, err
	}
	cs, err := connectAll(ctx, s, ids, clients)
	if err != nil {
		return nil, nil, err
	}
	return ids, cs, nil
}
