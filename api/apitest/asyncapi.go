package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/ticketflow/ticketflow/api"
)

// asyncAPIURL names the AsyncAPI document for the schema compiler; it is never fetched.
const asyncAPIURL = "https://ticketflow.invalid/asyncapi.json"

type asyncAPI struct {
	doc       map[string]any
	compiler  *jsonschema.Compiler
	mu        sync.Mutex
	compiled  map[string]*jsonschema.Schema
	serverMsg *jsonschema.Schema
	envelope  *jsonschema.Schema
}

// The AsyncAPI document's schemas are JSON Schema draft-07 (AsyncAPI 3.0's default schema
// format is a superset of it), compiled with format assertions on.
var loadAsyncAPI = sync.OnceValues(func() (*asyncAPI, error) {
	raw, err := api.AsyncAPIJSON()
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("api/asyncapi.yaml: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	if err := c.AddResource(asyncAPIURL, doc); err != nil {
		return nil, fmt.Errorf("api/asyncapi.yaml: %w", err)
	}
	a := &asyncAPI{compiler: c, compiled: map[string]*jsonschema.Schema{}}
	a.doc, _ = doc.(map[string]any)
	if a.serverMsg, err = a.schema("ServerMessage"); err != nil {
		return nil, err
	}
	if a.envelope, err = a.schema("Envelope"); err != nil {
		return nil, err
	}
	return a, nil
})

func (a *asyncAPI) schema(name string) (*jsonschema.Schema, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.compiled[name]; ok {
		return s, nil
	}
	s, err := a.compiler.Compile(asyncAPIURL + "#/components/schemas/" + name)
	if err != nil {
		return nil, fmt.Errorf("api/asyncapi.yaml: schema %s: %w", name, err)
	}
	a.compiled[name] = s
	return s, nil
}

func mustAsyncAPI() *asyncAPI {
	a, err := loadAsyncAPI()
	if err != nil {
		panic(err)
	}
	return a
}

// LoadAsyncAPI loads the AsyncAPI document and compiles its main schemas, for a test that
// reports the error itself. It returns the document as JSON values.
func LoadAsyncAPI() (map[string]any, error) {
	a, err := loadAsyncAPI()
	if err != nil {
		return nil, err
	}
	return a.doc, nil
}

// CheckSchema validates a JSON value against components.schemas[name] of api/asyncapi.yaml.
func CheckSchema(name string, data []byte) error {
	s, err := mustAsyncAPI().schema(name)
	if err != nil {
		return err
	}
	return check(s, name, data)
}

func check(s *jsonschema.Schema, what string, data []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s %s is not JSON: %w", what, abbreviate(data), err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("%s %s does not match api/asyncapi.yaml: %w", what, abbreviate(data), err)
	}
	return nil
}

// CheckWSMessage validates one message the notifier sent (a text frame) against the
// ServerMessage schema of api/asyncapi.yaml.
func CheckWSMessage(data []byte) error {
	return check(mustAsyncAPI().serverMsg, "WebSocket message", data)
}

// CheckEnvelope validates an event record's value (the envelope, with its type's data)
// against the Envelope schema of api/asyncapi.yaml.
func CheckEnvelope(value []byte) error {
	return check(mustAsyncAPI().envelope, "event", value)
}

// ValidateWSMessage is CheckWSMessage reporting a mismatch as a test error.
func ValidateWSMessage(t testing.TB, data []byte) {
	t.Helper()
	if err := CheckWSMessage(data); err != nil {
		t.Errorf("contract: %v", err)
	}
}

// ValidateEnvelope is CheckEnvelope reporting a mismatch as a test error; v is the envelope
// as bytes or as any value that marshals to it (events.Envelope).
func ValidateEnvelope(t testing.TB, v any) {
	t.Helper()
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatalf("contract: encode %T: %v", v, err)
		}
	}
	if err := CheckEnvelope(b); err != nil {
		t.Errorf("contract: %v", err)
	}
}
