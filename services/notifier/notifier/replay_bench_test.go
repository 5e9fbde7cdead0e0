package notifier

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
)

// BenchmarkReplayFromKafka is one client resuming 10,000 events behind: beyond the in-memory
// window, so every replay reads the ticket's partition from the broker, decodes and writes.
func BenchmarkReplayFromKafka(b *testing.B) {
	const missed = 10000
	br := kafkatest.Start(b, 12)
	v, err := auth.NewVerifier(testSecret)
	if err != nil {
		b.Fatal(err)
	}
	cfg := testConfig()
	n, err := New(cfg, Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Verifier: v, Kafka: br.Config, AllowedOrigins: []string{"*"}})
	if err != nil {
		b.Fatal(err)
	}
	srv := fiber.New(fiber.Config{DisableStartupMessage: true})
	n.Mount(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Listener(ln) }()
	go func() { _ = n.Run(ctx) }()
	defer func() { _ = srv.Shutdown() }()
	for !n.Ready() {
		time.Sleep(20 * time.Millisecond)
	}
	ticket := newTicketID("bench")
	if _, err := br.Producer.Append(ctx, created(ticket, "alice")); err != nil {
		b.Fatal(err)
	}
	first, err := br.Producer.Append(ctx, logEvents(ticket, "run-1", 1)...)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < missed; i += 1000 {
		if _, err := br.Producer.Append(ctx, logEvents(ticket, "run-1", 1000)...); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	tok, _ := v.Issue("alice", "user", time.Hour)
	u := "ws://" + ln.Addr().String() + "/ws/tickets/" + url.PathEscape(ticket) + "?" + url.Values{
		"access_token": {tok}, "cursor": {cursor.Single(first[0].Partition, first[0].Offset).String()}}.Encode()
	b.ResetTimer()
	for range b.N {
		c, _, err := websocket.Dial(ctx, u, nil)
		if err != nil {
			b.Fatal(err)
		}
		c.SetReadLimit(1 << 22)
		got := 0
		for {
			_, m, err := c.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if len(m) > 20 && string(m[:20]) == `{"type":"replay_comp` {
				break
			}
			got++
		}
		_ = c.CloseNow()
		if got != missed+1 { // + connected
			b.Fatal(fmt.Errorf("got %d messages, want %d", got, missed+1))
		}
	}
}
