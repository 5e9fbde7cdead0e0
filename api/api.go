// Package api holds ticketflow's machine-readable contracts, once: openapi.yaml (the REST API,
// OpenAPI 3.1) and asyncapi.yaml (the notifier's WebSockets and the Kafka topic, AsyncAPI 3.0).
// They are embedded so the command service can serve the OpenAPI document (GET
// /api/openapi.json) and tests can validate what the services answer (package apitest).
package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"sigs.k8s.io/yaml"
)

// OpenAPIYAML is api/openapi.yaml as written.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

// AsyncAPIYAML is api/asyncapi.yaml as written.
//
//go:embed asyncapi.yaml
var AsyncAPIYAML []byte

var (
	openAPIJSON  = sync.OnceValues(func() ([]byte, error) { return toJSON(OpenAPIYAML) })
	asyncAPIJSON = sync.OnceValues(func() ([]byte, error) { return toJSON(AsyncAPIYAML) })
)

// OpenAPIJSON is the OpenAPI document as JSON (converted once).
func OpenAPIJSON() ([]byte, error) { return openAPIJSON() }

// AsyncAPIJSON is the AsyncAPI document as JSON (converted once).
func AsyncAPIJSON() ([]byte, error) { return asyncAPIJSON() }

func toJSON(doc []byte) ([]byte, error) {
	b, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("api: convert a document to JSON: %w", err)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("api: the converted document is not JSON")
	}
	return b, nil
}
