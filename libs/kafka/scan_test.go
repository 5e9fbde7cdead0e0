package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A scan from an offset that retention (here DeleteRecords) removed says so with
// ErrBeforeLogStart, still wrapping kerr.OffsetOutOfRange; from the log start it reads on.
func TestScanBelowTheLogStart(t *testing.T) {
	b := kafkatest.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var envs []events.Envelope
	for i := range 5 {
		envs = append(envs, logEnv("t", fmt.Sprint(i)))
	}
	if _, err := b.Producer.Append(ctx, envs...); err != nil {
		t.Fatal(err)
	}
	var offsets kadm.Offsets
	offsets.Add(kadm.Offset{Topic: b.Config.Topic, Partition: 0, At: 3})
	if _, err := kadm.NewClient(b.Client).DeleteRecords(ctx, offsets); err != nil {
		t.Fatal(err)
	}
	count := func(rec *kgo.Record) (bool, error) { return true, nil }
	err := kafka.ScanPartition(ctx, b.Client, b.Config.Topic, 0, 1, kafka.ScanToEnd, count)
	if !errors.Is(err, kafka.ErrBeforeLogStart) || !errors.Is(err, kerr.OffsetOutOfRange) {
		t.Fatalf("scan from a deleted offset: %v", err)
	}
	var got []int64
	err = kafka.ScanPartition(ctx, b.Client, b.Config.Topic, 0, 3, kafka.ScanToEnd, func(rec *kgo.Record) (bool, error) {
		got = append(got, rec.Offset)
		return true, nil
	})
	if err != nil || len(got) != 2 || got[0] != 3 {
		t.Fatalf("scan from the log start: %v %v", got, err)
	}
}
