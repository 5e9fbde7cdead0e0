package wmkafka_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ticketflow/ticketflow/libs/kafka/wmkafka"
	"github.com/ticketflow/ticketflow/libs/proctest"
)

// The router of NewRouter, consuming through the Subscriber: a handler that fails twice then
// succeeds is called three times; one that always fails, or panics, is called 1+MaxRetries
// times and its message lands in the poison topic; the partition then moves on, in order, and
// every input offset (poisoned ones included) is committed.
func TestRouterRetryRecoverPoison(t *testing.T) {
	topic := newTopic(t, 2)
	poisonTopic := newTopic(t, 1)
	group := "g-" + watermill.NewShortUUID()
	pub := newPublisher(t)

	// Discarded: the retry middleware logs every failed attempt, panics with their stack.
	router, err := wmkafka.NewRouter(slog.New(slog.DiscardHandler), pub, poisonTopic)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		calls = map[string]int{}
		order []string
	)
	done := make(chan struct{})
	const flakyFailures = 2
	router.AddConsumerHandler("tickets", topic, newSubscriber(t, group), func(msg *message.Message) error {
		p := string(msg.Payload)
		mu.Lock()
		calls[p]++
		n := calls[p]
		if n == 1 {
			order = append(order, p)
		}
		mu.Unlock()
		switch p {
		case "flaky":
			if n <= flakyFailures {
				return errors.New("flaky failure")
			}
		case "poison":
			return errors.New("always fails")
		case "panic":
			panic("handler exploded")
		case "last":
			close(done)
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(ctx) }()
	<-router.Running()

	// One key, one partition: "last" can only run once everything before it is settled.
	sent := publishKeyed(t, pub, topic, "ticket-1", "flaky", "poison", "panic", "last")

	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the last message was never handled")
	}
	mu.Lock()
	want := map[string]int{
		"flaky":  flakyFailures + 1,
		"poison": wmkafka.RouterMaxRetries + 1,
		"panic":  wmkafka.RouterMaxRetries + 1,
		"last":   1,
	}
	for p, n := range want {
		if calls[p] != n {
			t.Errorf("handler called %d times for %q, want %d", calls[p], p, n)
		}
	}
	if got := strings.Join(order, ","); got != "flaky,poison,panic,last" {
		t.Errorf("first calls in order %s", got)
	}
	mu.Unlock()

	poisoned := subscribe(t, newSubscriber(t, ""), poisonTopic)
	for _, want := range []struct {
		msg    *message.Message
		reason string
	}{{sent[1], "always fails"}, {sent[2], "handler exploded"}} {
		m := receive(t, poisoned)
		m.Ack()
		if m.UUID != want.msg.UUID || string(m.Payload) != string(want.msg.Payload) {
			t.Fatalf("poison topic has %s %q, want %s %q", m.UUID, m.Payload, want.msg.UUID, want.msg.Payload)
		}
		if r := m.Metadata.Get(middleware.ReasonForPoisonedKey); !strings.Contains(r, want.reason) {
			t.Errorf("reason_poisoned = %q, want it to mention %q", r, want.reason)
		}
		if got := m.Metadata.Get(middleware.PoisonedTopicKey); got != topic {
			t.Errorf("topic_poisoned = %q, want %q", got, topic)
		}
		if got := m.Metadata.Get(middleware.PoisonedHandlerKey); got != "tickets" {
			t.Errorf("handler_poisoned = %q", got)
		}
	}
	expectNone(t, poisoned, 300*time.Millisecond)

	cancel()
	proctest.Returned(t, routerDone, 30*time.Second, "the router")

	// Everything was acked (the poisoned messages by the poison queue), so the group has
	// nothing left to deliver.
	expectNone(t, subscribe(t, newSubscriber(t, group), topic), 2*time.Second)
}
