package events

import "testing"

func BenchmarkDecodeLogEvent(b *testing.B) {
	v, _, _ := Encode(MustNew("ticket-123", "run-456", "processor", &LogEmittedData{Level: "INFO", Message: "ci: step one of the build is running now", Step: "run_ci", Stream: "stdout"}), "")
	b.ReportAllocs()
	for b.Loop() {
		env, err := DecodeEnvelope(v)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := env.Decode(); err != nil {
			b.Fatal(err)
		}
	}
}
