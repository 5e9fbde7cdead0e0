package adapters

import (
	"context"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
)

// A run resumed elsewhere continues its request's trace: RequestTrace reads the trace context
// back from the request record's headers.
func TestRequestTraceReadsTheRecordsTraceparent(t *testing.T) {
	b := kafkatest.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traced, err := kafka.Record(b.Config.Topic, events.MustNew("t", "r", "user:alice", &events.ProcessingRequestedData{RequestedBy: "alice", Reason: "start"}), tp)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := kafka.Record(b.Config.Topic, events.MustNew("t", "r2", "user:alice", &events.ProcessingRequestedData{RequestedBy: "alice", Reason: "start"}), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Client.ProduceSync(ctx, traced, plain).FirstErr(); err != nil {
		t.Fatal(err)
	}
	log, err := NewEventLog(b.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	sc, err := log.RequestTrace(ctx, traced.Partition, traced.Offset)
	if err != nil || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" || !sc.IsRemote() {
		t.Fatalf("RequestTrace = %v (%v), want the record's traceparent", sc, err)
	}
	sc, err = log.RequestTrace(ctx, plain.Partition, plain.Offset)
	if err != nil || sc.IsValid() {
		t.Fatalf("a record without traceparent: %v (%v)", sc, err)
	}
}
