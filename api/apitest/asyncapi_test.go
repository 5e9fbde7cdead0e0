package apitest_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ticketflow/ticketflow/api/apitest"
	"github.com/ticketflow/ticketflow/libs/events"
)

func TestAsyncAPIDocumentLoads(t *testing.T) {
	doc, err := apitest.LoadAsyncAPI()
	if err != nil {
		t.Fatal(err)
	}
	if doc["asyncapi"] != "3.0.0" {
		t.Fatalf("asyncapi: %v, want 3.0.0", doc["asyncapi"])
	}
	// Every local $ref resolves.
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if _, err := pointer(doc, ref); err != nil {
					t.Errorf("%s: $ref %s: %v", at, ref, err)
				}
			}
			for k, x := range v {
				walk(x, at+"/"+k)
			}
		case []any:
			for _, x := range v {
				walk(x, at+"/[]")
			}
		}
	}
	walk(doc, "#")
}

func pointer(doc map[string]any, ref string) (any, error) {
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok || m[part] == nil {
			return nil, &json.UnsupportedValueError{Str: "no " + part}
		}
		cur = m[part]
	}
	return cur, nil
}

// payloadSchema is components.schemas[<payload type name>] of the AsyncAPI document.
func payloadSchema(t *testing.T, name string) map[string]any {
	t.Helper()
	doc, _ := apitest.LoadAsyncAPI()
	s, _ := doc["components"].(map[string]any)["schemas"].(map[string]any)[name].(map[string]any)
	if s == nil {
		t.Fatalf("api/asyncapi.yaml has no schema %s", name)
	}
	return s
}

// enumSamples are values of the enumerated payload fields.
var enumSamples = map[string]string{"simulate_failure": "once", "reason": "start", "outcome": "ok", "stream": "stdout", "source": "file"}

// fill sets every field of a payload struct to a sample value.
func fill(v reflect.Value) {
	for i := range v.NumField() {
		f, name := v.Field(i), strings.Split(v.Type().Field(i).Tag.Get("json"), ",")[0]
		switch f.Kind() {
		case reflect.String:
			s := "sample " + name
			if e, ok := enumSamples[name]; ok {
				s = e
			}
			f.SetString(s)
		case reflect.Int, reflect.Int64:
			f.SetInt(3)
		case reflect.Bool:
			f.SetBool(true)
		}
	}
}

// Every event type of libs/events has its payload schema, named after the Go type, with
// exactly the payload's JSON fields, required unless omitempty; a sample event of each type
// (every field set, and every optional field left out) encodes to a record value that validates against
// the Envelope schema, with its version; and the CloudEvents headers validate.
func TestEveryEventTypeHasASchema(t *testing.T) {
	if len(events.Types()) < 16 {
		t.Fatalf("only %d event types", len(events.Types()))
	}
	for _, typ := range events.Types() {
		t.Run(string(typ), func(t *testing.T) {
			zero, err := events.Envelope{Type: typ, Version: events.CurrentVersion(typ), Data: json.RawMessage(`{}`)}.Decode()
			if err != nil {
				t.Fatal(err)
			}
			rt := reflect.TypeOf(zero).Elem()
			s := payloadSchema(t, rt.Name())
			props, _ := s["properties"].(map[string]any)
			var required []string
			for _, r := range s["required"].([]any) {
				required = append(required, r.(string))
			}
			var fields []string
			for i := range rt.NumField() {
				tag := strings.Split(rt.Field(i).Tag.Get("json"), ",")
				fields = append(fields, tag[0])
				if props[tag[0]] == nil {
					t.Errorf("schema %s lacks field %s", rt.Name(), tag[0])
				}
				if omit := slices.Contains(tag[1:], "omitempty"); omit == slices.Contains(required, tag[0]) {
					t.Errorf("schema %s: %s is required=%v, but the field's omitempty=%v", rt.Name(), tag[0], !omit, omit)
				}
			}
			for p := range props {
				if !slices.Contains(fields, p) {
					t.Errorf("schema %s has %s, which %s does not", rt.Name(), p, rt)
				}
			}
			if s["additionalProperties"] != false {
				t.Errorf("schema %s allows additional properties", rt.Name())
			}

			full, sparse := reflect.New(rt), reflect.New(rt)
			fill(full.Elem())
			fill(sparse.Elem())
			for i := range rt.NumField() {
				if strings.Contains(rt.Field(i).Tag.Get("json"), ",omitempty") {
					sparse.Elem().Field(i).SetZero() // absent from the encoding
				}
			}
			for _, p := range []events.Payload{full.Interface().(events.Payload), sparse.Interface().(events.Payload)} {
				env := events.MustNew("ticket-1", "run-1", "alice", p)
				value, headers, err := events.Encode(env, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
				if err != nil {
					t.Fatal(err)
				}
				if err := apitest.CheckEnvelope(value); err != nil {
					t.Error(err)
				}
				hs := map[string]string{}
				for _, h := range headers {
					hs[h.Key] = string(h.Value)
				}
				b, _ := json.Marshal(hs)
				if err := apitest.CheckSchema("CloudEventsHeaders", b); err != nil {
					t.Error(err)
				}
			}
			// The schema pins the version: a version this build does not write is refused.
			env := events.MustNew("ticket-1", "", "alice", zero)
			env.Version++
			b, _ := json.Marshal(env)
			if apitest.CheckEnvelope(b) == nil {
				t.Errorf("an envelope of %s v%d validated", typ, env.Version)
			}
		})
	}
	// A wrong payload field type, an unknown type and a missing field are refused.
	env := events.MustNew("t", "", "a", &events.StepStartedData{Step: "run_ci", Attempt: 1})
	for _, bad := range []string{
		strings.Replace(mustJSON(env), `"attempt":1`, `"attempt":"1"`, 1),
		strings.Replace(mustJSON(env), `"StepStarted"`, `"Nope"`, 1),
		strings.Replace(mustJSON(env), `"ticket_id":"t",`, ``, 1),
		strings.Replace(mustJSON(env), `"occurred_at":"`, `"occurred_at":"yesterday`, 1),
	} {
		if apitest.CheckEnvelope([]byte(bad)) == nil {
			t.Errorf("validated: %s", bad)
		}
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
