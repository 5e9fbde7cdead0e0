package events

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	env := MustNew("t-1", "r-1", "alice", &StepStartedData{Step: "call_llm", Progress: 50, Iteration: 2, Attempt: 1})
	value, headers, err := Encode(env, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{}
	for _, x := range headers {
		h[x.Key] = string(x.Value)
	}
	for k, want := range map[string]string{
		HeaderSpecVersion: "1.0", HeaderID: env.ID, HeaderType: "io.ticketflow.StepStarted.v1",
		HeaderSource: Source, HeaderSubject: "t-1", HeaderTraceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	} {
		if h[k] != want {
			t.Errorf("header %s = %q, want %q", k, h[k], want)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, h[HeaderTime]); err != nil {
		t.Errorf("ce_time %q: %v", h[HeaderTime], err)
	}
	got, err := DecodeEnvelope(value)
	if err != nil {
		t.Fatal(err)
	}
	p, err := got.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if s := p.(*StepStartedData); s.Step != "call_llm" || s.Progress != 50 || s.Iteration != 2 {
		t.Fatalf("payload = %+v", s)
	}
	if got.ID != env.ID || got.Type != StepStarted || got.Version != 1 || !got.OccurredAt.Equal(env.OccurredAt) {
		t.Fatalf("envelope = %+v", got)
	}
}

func TestUnknownTypesAndVersionsAreSkippable(t *testing.T) {
	base := MustNew("t", "", "a", &TicketCreatedData{Title: "x"})
	for _, e := range []Envelope{
		{ID: "0190a0a0-0000-7000-8000-000000000001", Type: "SomethingNew", Version: 1, TicketID: "t", OccurredAt: base.OccurredAt},
		{ID: "0190a0a0-0000-7000-8000-000000000002", Type: TicketCreated, Version: 99, TicketID: "t", OccurredAt: base.OccurredAt, Data: base.Data},
	} {
		if _, err := e.Decode(); !errors.Is(err, ErrUnknown) {
			t.Errorf("%s v%d: err = %v, want ErrUnknown", e.Type, e.Version, err)
		}
	}
}

func TestDecodeEnvelopeRejectsMalformed(t *testing.T) {
	for _, v := range []string{``, `{`, `[]`, `{"id":"x"}`, `{"id":"x","type":"TicketCreated","ticket_id":""}`} {
		if _, err := DecodeEnvelope([]byte(v)); err == nil {
			t.Errorf("DecodeEnvelope(%q) accepted", v)
		}
	}
}

func TestEveryCatalogTypeRoundTrips(t *testing.T) {
	for typ, s := range catalog {
		p := s.newPayload()
		if p.EventType() != typ {
			t.Fatalf("%s payload reports %s", typ, p.EventType())
		}
		env := MustNew("t", "r", "a", p)
		v, _, err := Encode(env, "")
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeEnvelope(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := back.Decode(); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	v, _, _ := Encode(MustNew("t", "r", "a", &LogEmittedData{Level: "INFO", Message: "hi"}), "")
	f.Add(v)
	f.Add([]byte(`{"id":"1","type":"LogEmitted","version":1,"ticket_id":"t","occurred_at":"2025-01-01T00:00:00Z","data":{"level":3}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := DecodeEnvelope(b)
		if err != nil {
			return
		}
		if _, err := env.Decode(); err != nil && !errors.Is(err, ErrUnknown) && !strings.Contains(err.Error(), "decode") {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if _, err := json.Marshal(env); err != nil {
			t.Fatal(err)
		}
	})
}
