package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Append returns each envelope's own position, even when one call spans partitions (results
// complete in any order across partitions).
func TestAppendReturnsEachEnvelopesPosition(t *testing.T) {
	broker := kafkatest.Start(t, 8)
	cfg := broker.Config
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var envs []events.Envelope
	for i := 0; i < 64; i++ {
		envs = append(envs, events.MustNew(fmt.Sprintf("ticket-%d", i%16), "", "test", &events.LogEmittedData{Level: "INFO", Message: fmt.Sprint(i)}))
	}
	pos, err := broker.Producer.Append(ctx, envs...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[events.Position]string{}
	for i, p := range pos {
		want[p] = envs[i].ID
	}
	if len(want) != len(envs) {
		t.Fatalf("%d distinct positions for %d envelopes", len(want), len(envs))
	}
	reader, err := kafka.NewClient(cfg, kgo.ConsumeTopics(cfg.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	for seen := 0; seen < len(envs); {
		fetches := reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", seen, len(envs))
		}
		fetches.EachRecord(func(rec *kgo.Record) {
			ev, err := kafka.Event(rec)
			if err != nil {
				t.Fatal(err)
			}
			if id := want[ev.Position]; id != ev.ID {
				t.Errorf("position %+v holds %s, Append said %s", ev.Position, ev.ID, id)
			}
			seen++
		})
	}
}
