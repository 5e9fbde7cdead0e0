package e2e

// Every service, run as its own process (as in Kubernetes or compose), exposes its share of
// the metrics the dashboard and alerts use on its own /metrics; together they expose every
// name of deploy/observability/metric-names.txt (generated from `ticketflow dev`, where one
// /metrics serves all four).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/ticketflow/ticketflow/e2e/topology"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
)

const metricsSecret = "metrics-secret-metrics-secret-0123456789"

// agentOnly are the coding agent's metrics: a processor exposes them once a model call happened,
// which the simulated executor makes none of (cmd/ticketflow's observability test scrapes them
// after a real-executor run).
var agentOnly = map[string]bool{"ticketflow_llm_tokens_total": true, "ticketflow_llm_cost_usd_total": true}

// perService are names each service's own scrape must expose after a run.
var perService = map[topology.Kind][]string{
	topology.Command: {"ticketflow_http_requests_total", "ticketflow_http_request_duration_seconds", "ticketflow_kafka_produce_bytes_total",
		"ticketflow_kafka_buffered_produce_records_total", "ticketflow_pg_pool_acquired_conns", "ticketflow_pg_pool_max_conns"},
	topology.Processor: {"ticketflow_http_requests_total", "ticketflow_run_duration_seconds", "ticketflow_step_duration_seconds",
		"ticketflow_ci_duration_seconds", "ticketflow_processor_runs_finished_total", "ticketflow_kafka_consumer_lag",
		"ticketflow_kafka_fetch_bytes_total", "ticketflow_pg_pool_acquired_conns"},
	topology.Projector: {"ticketflow_http_requests_total", "ticketflow_projector_batch_seconds", "ticketflow_projector_events_applied_total",
		"ticketflow_kafka_consumer_lag", "ticketflow_kafka_fetch_bytes_total", "ticketflow_pg_pool_acquired_conns"},
	topology.Notifier: {"ticketflow_http_requests_total", "ticketflow_notifier_connections", "ticketflow_notifier_slow_client_disconnects_total",
		"ticketflow_kafka_consumer_lag", "ticketflow_kafka_fetch_bytes_total"},
}

func TestEveryServiceExposesItsMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	root, work := topology.BuildT(t, ctx)
	top := topology.StartT(t, ctx, topology.Shape{Brokers: 1, Command: 1, Processor: 1, Projector: 1, Notifier: 1}, topology.Options{
		BinDir: filepath.Join(work, "bin"), Dir: filepath.Join(work, "run"), DatabaseURL: pgtest.NewDatabase(t),
		JWTSecret: metricsSecret, Partitions: 2,
		Env: []string{"TICKETFLOW_EXECUTOR=simulated", "TICKETFLOW_SIM_STEP_DELAY=10ms", "TICKETFLOW_LOG_LEVEL=warn"},
	})
	v, _ := auth.NewVerifier(metricsSecret)
	token, _ := v.Issue("alice", auth.RoleUser, time.Hour)
	command := top.Instances(topology.Command)[0].URL()

	var ticket struct{ ID string }
	if code := call(t, ctx, token, "POST", command+"/api/tickets", map[string]any{"title": "metrics"}, &ticket); code != 201 {
		t.Fatalf("create ticket: %d", code)
	}
	ws, _, err := websocket.Dial(ctx, fmt.Sprintf("%s/ws/tickets/%s?access_token=%s", top.Instances(topology.Notifier)[0].WSURL(), ticket.ID, token), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if code := call(t, ctx, token, "POST", command+"/api/tickets/processing/start", map[string]any{"ticket_id": ticket.ID}, nil); code/100 != 2 {
		t.Fatalf("start: %d", code)
	}
	for {
		var tk struct{ Status string }
		call(t, ctx, token, "GET", command+"/api/tickets/"+ticket.ID, nil, &tk)
		if tk.Status == "COMPLETED" {
			break
		}
		if tk.Status == "FAILED" || tk.Status == "CANCELLED" || ctx.Err() != nil {
			t.Fatalf("run ended %q (%v)", tk.Status, ctx.Err())
		}
		time.Sleep(100 * time.Millisecond)
	}

	union := map[string]bool{}
	for kind, want := range perService {
		in := top.Instances(kind)[0]
		var got map[string]bool
		// The last appends of the run reach the projector and the notifier just after the
		// ticket shows COMPLETED.
		for deadline := time.Now().Add(30 * time.Second); ; {
			got = scrape(t, in.URL()+"/metrics")
			if missing := missingFrom(got, want); len(missing) == 0 || time.Now().After(deadline) {
				if len(missing) > 0 {
					t.Errorf("%s's /metrics lacks %v", kind, missing)
				}
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		for n := range got {
			union[n] = true
		}
	}
	for _, name := range metricNamesFile(t, filepath.Join(root, "deploy", "observability", "metric-names.txt")) {
		if !union[name] && !agentOnly[name] {
			t.Errorf("%s is in metric-names.txt but no service's /metrics exposes it", name)
		}
	}
}

func call(t *testing.T, ctx context.Context, token, method, url string, body, out any) int {
	t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func scrape(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	names := map[string]bool{}
	for n := range families {
		names[n] = true
	}
	return names
}

func missingFrom(got map[string]bool, want []string) []string {
	var missing []string
	for _, n := range want {
		if !got[n] {
			missing = append(missing, n)
		}
	}
	return missing
}

func metricNamesFile(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			names = append(names, line)
		}
	}
	return names
}
