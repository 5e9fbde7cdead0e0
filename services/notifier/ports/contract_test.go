package ports_test

import (
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ticketflow/ticketflow/api/apitest"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/services/notifier/app"
	"github.com/ticketflow/ticketflow/services/notifier/ports"
)

// The routes the notifier's process registers are its WebSocket channels in
// api/asyncapi.yaml and the ops routes in api/openapi.yaml; every WebSocket channel of the
// AsyncAPI document is registered.
func TestRoutesMatchContracts(t *testing.T) {
	web := httpx.NewApp(slog.New(slog.DiscardHandler), nil)
	httpx.MountOps(web, httpx.NewRegistry(), nil)
	ports.NewServer(app.Config{}, ports.Deps{}).Mount(web)

	doc, err := apitest.LoadAsyncAPI()
	if err != nil {
		t.Fatal(err)
	}
	var channels []string
	for _, ch := range doc["channels"].(map[string]any) {
		ch := ch.(map[string]any)
		if addr, _ := ch["address"].(string); strings.HasPrefix(addr, "/ws/") {
			channels = append(channels, "GET "+addr)
		}
	}
	var ops []string
	for path, item := range apitest.OpenAPI().Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	param := regexp.MustCompile(`:([A-Za-z0-9_]+)`)
	var registered []string
	for _, r := range web.GetRoutes(true) {
		if r.Method == "HEAD" {
			continue
		}
		route := r.Method + " " + param.ReplaceAllString(r.Path, "{$1}")
		registered = append(registered, route)
		if !slices.Contains(channels, route) && !slices.Contains(ops, route) {
			t.Errorf("route %s is registered but in neither api/asyncapi.yaml nor api/openapi.yaml", route)
		}
	}
	for _, ch := range channels {
		if !slices.Contains(registered, ch) {
			t.Errorf("api/asyncapi.yaml has channel %s, which is not registered", ch)
		}
	}
	if len(channels) != 2 {
		t.Errorf("WebSocket channels: %v, want 2", channels)
	}
}
