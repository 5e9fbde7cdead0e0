package projector

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
	"github.com/twmb/franz-go/pkg/kadm"
)

// A topic deleted and recreated (new topic id) is detected: the projector refuses to go on
// from offsets that belong to the old topic, unless told to re-project the new one.
func TestRecreatedTopicIsDetected(t *testing.T) {
	broker := kafkatest.Start(t, 2)
	kcfg, cl, producer := broker.Config, broker.Client, broker.Producer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db := pgtest.NewPool(t)
	log := slog.New(slog.DiscardHandler)
	count := func() (n int) {
		_ = db.QueryRow(ctx, `SELECT count(*) FROM ticket_events`).Scan(&n)
		return n
	}
	project := func(cfg Config, want int) error {
		runCtx, stop := context.WithCancel(ctx)
		defer stop()
		errc := make(chan error, 1)
		go func() { errc <- New(cfg, Deps{Log: log, DB: db, Kafka: kcfg}).Run(runCtx) }()
		deadline := time.After(20 * time.Second)
		for count() < want {
			select {
			case err := <-errc:
				return err
			case <-deadline:
				t.Fatalf("projected %d of %d events", count(), want)
			case <-time.After(50 * time.Millisecond):
			}
		}
		stop()
		return <-errc
	}

	if _, err := producer.Append(ctx, events.MustNew("t1", "", "a", &events.TicketCreatedData{Title: "old", Owner: "a"})); err != nil {
		t.Fatal(err)
	}
	if err := project(Config{Group: "projector"}, 1); err != nil {
		t.Fatal(err)
	}

	adm := kadm.NewClient(cl)
	if _, err := adm.DeleteTopic(ctx, kcfg.Topic); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := kafka.EnsureTopic(ctx, cl, kcfg)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cl2, err := kafka.NewClient(kcfg) // a client that never saw the old topic id
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	if _, err := kafka.NewProducer(cl2, kcfg.Topic).Append(ctx, events.MustNew("t2", "", "a", &events.TicketCreatedData{Title: "new", Owner: "a"})); err != nil {
		t.Fatal(err)
	}
	if err := project(Config{Group: "projector"}, 2); !errors.Is(err, ErrTopicRecreated) {
		t.Fatalf("projector on a recreated topic: %v, want ErrTopicRecreated", err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d events projected from the recreated topic without consent", n)
	}
	if err := project(Config{Group: "projector", ResetOnTopicChange: true}, 2); err != nil {
		t.Fatal(err)
	}
	var title string
	if err := db.QueryRow(ctx, `SELECT title FROM tickets WHERE id = 't2'`).Scan(&title); err != nil || title != "new" {
		t.Fatalf("ticket from the new topic: %q, %v", title, err)
	}
}
