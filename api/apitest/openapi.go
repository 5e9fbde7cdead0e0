// Package apitest checks in tests that what ticketflow's services answer is what
// api/openapi.yaml and api/asyncapi.yaml say: REST responses with kin-openapi's openapi3filter
// (ValidateResponse, Transport), WebSocket messages and Kafka envelopes with a JSON Schema
// 2020-12 validator over the AsyncAPI document's schemas (ValidateWSMessage, ValidateEnvelope).
package apitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/ticketflow/ticketflow/api"
)

// NDJSON is the media type of the audit-trail export.
const NDJSON = "application/x-ndjson"

type openAPI struct {
	doc    *openapi3.T
	router routers.Router
}

// OpenAPI is the loaded and validated OpenAPI document (loaded once; it panics if the
// document does not load or is invalid, which TestOpenAPIDocumentIsValid reports first).
func OpenAPI() *openapi3.T { return mustOpenAPI().doc }

var loadOpenAPI = sync.OnceValues(func() (*openAPI, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("load api/openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml is invalid: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route api/openapi.yaml: %w", err)
	}
	openapi3filter.RegisterBodyDecoder(NDJSON, ndjsonDecoder)
	return &openAPI{doc: doc, router: router}, nil
})

func mustOpenAPI() *openAPI {
	o, err := loadOpenAPI()
	if err != nil {
		panic(err)
	}
	return o
}

// LoadOpenAPI loads and validates the document, for a test that reports the error itself.
func LoadOpenAPI() (*openapi3.T, error) {
	o, err := loadOpenAPI()
	if err != nil {
		return nil, err
	}
	return o.doc, nil
}

// ndjsonDecoder decodes an NDJSON body as the array of its lines' values, so the document
// describes it as an array of one schema.
func ndjsonDecoder(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	out := []any{}
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var v any
		if err := json.Unmarshal(line, &v); err != nil {
			return nil, fmt.Errorf("NDJSON line %d: %w", len(out)+1, err)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

// CheckResponse validates one response (status, headers the document names, body) against
// the operation the request matches. A request that matches no documented path is an error,
// except a 404 (an unknown endpoint is answered 404 with the error shape, which is checked).
func CheckResponse(req *http.Request, status int, header http.Header, body []byte) error {
	o := mustOpenAPI()
	// The router matches servers by URL; test requests are often path-only.
	r := req.Clone(context.Background())
	if r.URL.Host == "" {
		r.URL.Host, r.Host = "localhost", "localhost"
	}
	if r.URL.Scheme == "" {
		r.URL.Scheme = "http"
	}
	route, params, err := o.router.FindRoute(r)
	if err != nil {
		if status == http.StatusNotFound && errors.Is(err, routers.ErrPathNotFound) {
			return checkErrorShape(body)
		}
		return fmt.Errorf("%s %s (answered %d) is not in api/openapi.yaml: %w", req.Method, req.URL.Path, status, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: r, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  status,
		Header:  header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s answered %d %s, which api/openapi.yaml does not allow: %w",
			req.Method, req.URL.Path, status, abbreviate(body), err)
	}
	return nil
}

// checkErrorShape checks a body is the API's error shape.
func checkErrorShape(body []byte) error {
	s := OpenAPI().Components.Schemas["ErrorResponse"]
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("a 404 that is not JSON: %s", abbreviate(body))
	}
	if err := s.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("a 404 that is not the error shape: %s: %w", abbreviate(body), err)
	}
	return nil
}

func abbreviate(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// ValidateResponse is CheckResponse reporting a mismatch as a test error.
func ValidateResponse(t testing.TB, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	if err := CheckResponse(req, resp.StatusCode, resp.Header, body); err != nil {
		t.Errorf("contract: %v", err)
	}
}

// Transport is an http.RoundTripper that checks every response against the document, for
// the HTTP client of a test (http.Client{Transport: apitest.Transport(t, nil)}). WebSocket
// upgrades and paths outside the API (the web app's files) are passed through unchecked.
func Transport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{t: t, base: base}
}

type transport struct {
	t    testing.TB
	base http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := tr.base.RoundTrip(req)
	if err != nil || !Checked(req) || resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, err
	}
	body, rerr := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil {
		return resp, nil // the caller sees the truncated body and fails on its own
	}
	if err := CheckResponse(req, resp.StatusCode, resp.Header, body); err != nil {
		tr.t.Errorf("contract: %v", err)
	}
	return resp, nil
}

// Checked reports whether a request's answer is described by api/openapi.yaml: /api/...,
// /healthz, /readyz and /metrics (not the WebSockets, described in api/asyncapi.yaml, nor
// the web app's files).
func Checked(req *http.Request) bool {
	p := req.URL.Path
	return strings.HasPrefix(p, "/api/") || p == "/healthz" || p == "/readyz" || p == "/metrics"
}
