package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
)

// A second producer with the same transactional id fences the first: the first's next
// Append fails with ErrFenced and appends nothing, the second's goes through.
func TestTxnProducerFencing(t *testing.T) {
	broker := kafkatest.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := kafka.NewTxnProducer(ctx, broker.Config, "fencing-test")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	newEnv := func() events.Envelope {
		env, err := events.New("t1", "", "test", &events.TicketCreatedData{Title: "x", Owner: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	if _, err := first.Append(ctx, newEnv()); err != nil {
		t.Fatalf("first append: %v", err)
	}
	second, err := kafka.NewTxnProducer(ctx, broker.Config, "fencing-test")
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := first.Append(ctx, newEnv()); !errors.Is(err, kafka.ErrFenced) {
		t.Fatalf("fenced producer's append: %v, want ErrFenced", err)
	}
	pos, err := second.Append(ctx, newEnv(), newEnv())
	if err != nil || len(pos) != 2 || pos[1].Offset <= pos[0].Offset {
		t.Fatalf("second append: %v %v", pos, err)
	}
}
