package apitest_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ticketflow/ticketflow/api"
	"github.com/ticketflow/ticketflow/api/apitest"
)

// The document loads and passes kin-openapi's own validation (OpenAPI 3.1 rules).
func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc, err := apitest.LoadOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi: %s, want 3.1.0", doc.OpenAPI)
	}
	if _, err := api.OpenAPIJSON(); err != nil {
		t.Fatal(err)
	}
}

// The validator catches an answer the document does not allow, and lets a good one pass.
func TestCheckResponse(t *testing.T) {
	req := httptest.NewRequest("GET", "/api/me", nil)
	h := http.Header{"Content-Type": {"application/json"}}
	for _, tc := range []struct {
		status int
		body   string
		ok     bool
	}{
		{200, `{"sub":"alice","role":"user"}`, true},
		{200, `{"sub":"alice","role":"root"}`, false},
		{200, `{"sub":"alice"}`, false},
		{401, `{"success":false,"error":{"code":"unauthenticated","message":"no"}}`, true},
		{401, `{"error":"no"}`, false},
		{418, `{"success":false,"error":{"code":"error","message":"teapot"}}`, false},
	} {
		err := apitest.CheckResponse(req, tc.status, h, []byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%d %s: %v, want ok=%v", tc.status, tc.body, err, tc.ok)
		}
	}
	unknown := httptest.NewRequest("GET", "/api/nothing", nil)
	if err := apitest.CheckResponse(unknown, 404, h, []byte(`{"success":false,"error":{"code":"not_found","message":"no"}}`)); err != nil {
		t.Errorf("unknown endpoint's 404: %v", err)
	}
	if err := apitest.CheckResponse(unknown, 200, h, []byte(`{}`)); err == nil {
		t.Errorf("an undocumented route answering 200 passed")
	}
	env := `{"id":"0190b7a4-7d7e-7c4e-9a4e-3c1f6b0e8a11","type":"TicketCreated","version":1,"ticket_id":"t","occurred_at":"2026-01-02T03:04:05Z","actor":"a","data":{}}`
	nd := httptest.NewRequest("GET", "/api/tickets/t/events?format=ndjson", nil)
	ndh := http.Header{"Content-Type": {apitest.NDJSON}}
	if err := apitest.CheckResponse(nd, 200, ndh, []byte(env+"\n"+env+"\n")); err != nil {
		t.Errorf("NDJSON export: %v", err)
	}
	if err := apitest.CheckResponse(nd, 200, ndh, []byte(env+"\n{\"id\":1}\n")); err == nil {
		t.Errorf("a bad NDJSON line passed")
	}
	page := map[string]any{"events": []any{map[string]any{"cursor": "v1.0-3", "partition": 0, "offset": 3, "event": json.RawMessage(env)}}, "next_cursor": nil}
	b, _ := json.Marshal(page)
	if err := apitest.CheckResponse(httptest.NewRequest("GET", "/api/runs/r/events", nil), 200, h, b); err != nil {
		t.Errorf("event page: %v", err)
	}
}
