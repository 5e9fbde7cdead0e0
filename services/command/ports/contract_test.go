package ports_test

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ticketflow/ticketflow/api/apitest"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/services/command/ports"
)

// The routes the command service's process registers (its /api routes and the ops routes
// every process has) are exactly the paths and operations of api/openapi.yaml: a route added
// without its documentation, or documentation of a route that does not exist, fails here.
func TestRoutesMatchOpenAPI(t *testing.T) {
	v, _ := auth.NewVerifier("command-test-secret-command-test-secret")
	web := httpx.NewApp(slog.New(slog.DiscardHandler), nil)
	httpx.MountOps(web, httpx.NewRegistry(), nil)
	ports.NewHTTP(ports.Config{}, nil, v).Mount(web)

	param := regexp.MustCompile(`:([A-Za-z0-9_]+)`)
	var registered []string
	for _, r := range web.GetRoutes(true) {
		if r.Method == "HEAD" || strings.HasSuffix(r.Path, "*") {
			continue // Fiber adds HEAD to every GET; /api/* is the catch-all 404
		}
		registered = append(registered, r.Method+" "+param.ReplaceAllString(r.Path, "{$1}"))
	}
	var documented []string
	for path, item := range apitest.OpenAPI().Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(registered)
	registered = slices.Compact(registered)
	slices.Sort(documented)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is registered but not in api/openapi.yaml", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("api/openapi.yaml lists %s, which is not registered", d)
		}
	}
	if len(registered) < 15 {
		t.Fatalf("only %d routes found: %v", len(registered), registered)
	}
}

// GET /api/openapi.json serves the document, without a token, as valid JSON that is itself
// the document (it validates as the answer of its own route).
func TestServesOpenAPIJSON(t *testing.T) {
	v, _ := auth.NewVerifier("command-test-secret-command-test-secret")
	web := httpx.NewApp(slog.New(slog.DiscardHandler), nil)
	ports.NewHTTP(ports.Config{}, nil, v).Mount(web)
	req := httptest.NewRequest("GET", "/api/openapi.json", nil)
	resp, err := web.Test(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"openapi":"3.1.0"`) {
		t.Fatalf("GET /api/openapi.json: %d %.200s", resp.StatusCode, body)
	}
	apitest.ValidateResponse(t, req, resp, body)
}
