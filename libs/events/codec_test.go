package events

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
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
		sameAsEncodingJSON(t, b)
		env, err := DecodeEnvelope(b)
		if err != nil {
			return
		}
		sameAsEncodingJSON(t, env.Data)
		if _, err := env.Decode(); err != nil && !errors.Is(err, ErrUnknown) && !strings.Contains(err.Error(), "decode") {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if _, err := json.Marshal(env); err != nil {
			t.Fatal(err)
		}
	})
}

// sameAsEncodingJSON checks that unmarshal (segmentio/encoding) accepts exactly what
// encoding/json accepts and decodes it to the same envelope and log payload.
func sameAsEncodingJSON(t *testing.T, b []byte) {
	t.Helper()
	var fast, std Envelope
	errFast, errStd := unmarshal(b, &fast), json.Unmarshal(b, &std)
	if errFast == nil && errStd != nil {
		t.Fatalf("%q: unmarshal accepts what encoding/json refuses (%v)", b, errStd)
	}
	if errFast != nil && errStd == nil && !lenientTime(b) {
		t.Fatalf("%q: unmarshal error %v, encoding/json accepts it", b, errFast)
	}
	if errFast == nil && !reflect.DeepEqual(fast, std) {
		t.Fatalf("%q: unmarshal %+v, encoding/json %+v", b, fast, std)
	}
	var fastLog, stdLog LogEmittedData
	errFast, errStd = unmarshal(b, &fastLog), json.Unmarshal(b, &stdLog)
	if (errFast == nil) != (errStd == nil) || (errStd == nil && fastLog != stdLog) {
		t.Fatalf("%q as a log payload: unmarshal %+v (%v), encoding/json %+v (%v)", b, fastLog, errFast, stdLog, errStd)
	}
}

// strictRFC3339 is RFC 3339's date-time: two-digit fields, '.' before a fraction.
var strictRFC3339 = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$`)

// lenientTime reports whether b's occurred_at is a timestamp encoding/json accepts but RFC
// 3339 does not (one-digit hour, ',' fraction): the one place unmarshal is stricter.
func lenientTime(b []byte) bool {
	var raw struct {
		OccurredAt string `json:"occurred_at"`
	}
	return json.Unmarshal(b, &raw) == nil && !strictRFC3339.MatchString(raw.OccurredAt)
}
