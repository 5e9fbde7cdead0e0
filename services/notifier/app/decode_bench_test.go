package app

import (
	"testing"

	"github.com/ticketflow/ticketflow/libs/events"
)

// BenchmarkDecodeRecord is a replay's cost per record: the log record of a LogEmitted event
// turned into its client message (the envelope, the payload, the message's encoding).
func BenchmarkDecodeRecord(b *testing.B) {
	v, _, err := events.Encode(events.MustNew("ticket-123", "run-456", "processor", &events.LogEmittedData{Level: "INFO", Message: "ci: step one of the build is running now", Step: "run_ci", Stream: "stdout"}), "")
	if err != nil {
		b.Fatal(err)
	}
	rec := Record{Partition: 3, Offset: 123456, Key: []byte("ticket-123"), Value: v}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := decodeRecord(rec); !ok {
			b.Fatal("not decoded")
		}
	}
}
