package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

const (
	metricNamesFile = "observability/metric-names.txt"
	dashboardFile   = "observability/grafana/ticketflow.json"
	alertsFile      = "observability/prometheus/alerts.yaml"
	prometheusFile  = "observability/prometheus/prometheus.yml"
)

// histograms are the classic histograms of metric-names.txt (listed there by base name): a query
// must use their _bucket, _sum or _count series, the base name alone selects nothing.
var histograms = []string{
	"ticketflow_ci_duration_seconds",
	"ticketflow_http_request_duration_seconds",
	"ticketflow_projector_batch_seconds",
	"ticketflow_run_duration_seconds",
	"ticketflow_step_duration_seconds",
}

// metricNames reads metric-names.txt: the names a scrape of the services exposes (the tracing
// e2e test regenerates it from a real scrape). It must be sorted, without duplicates.
func metricNames(t *testing.T) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(metricNamesFile)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	var list []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !model.LegacyValidation.IsValidMetricName(line) {
			t.Errorf("%s: %q is not a metric name", metricNamesFile, line)
		}
		if names[line] {
			t.Errorf("%s: %s twice", metricNamesFile, line)
		}
		names[line] = true
		list = append(list, line)
	}
	if !slices.IsSorted(list) {
		t.Errorf("%s is not sorted", metricNamesFile)
	}
	if len(names) == 0 {
		t.Fatalf("%s lists no metric", metricNamesFile)
	}
	return names
}

func TestMetricNamesFile(t *testing.T) {
	names := metricNames(t)
	for _, h := range histograms {
		if !names[h] {
			t.Errorf("histogram %s is not in %s", h, metricNamesFile)
		}
	}
}

// grafanaVars are Grafana's built-in variables, replaced by a value of the same PromQL type so
// that the query parses as Prometheus will receive it.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m", "${__rate_interval}", "5m",
	"$__interval", "1m", "${__interval}", "1m",
	"$__range", "1h", "${__range}", "1h",
)

// promqlParser is the parser Prometheus itself uses for queries and rules.
var promqlParser = parser.NewParser(parser.Options{})

// exprMetrics parses a PromQL expression and returns the metric names it selects.
func exprMetrics(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := promqlParser.ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return nil
	}
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			t.Errorf("%s: %q selects series without naming a metric", where, expr)
			return nil
		}
		out = append(out, name)
		return nil
	})
	if len(out) == 0 {
		t.Errorf("%s: %q selects no metric", where, expr)
	}
	return out
}

// checkMetric fails unless name (a histogram's series by its base name) is in names.
func checkMetric(t *testing.T, names map[string]bool, where, name string) {
	t.Helper()
	if slices.Contains(histograms, name) {
		t.Errorf("%s: %s is a histogram: query its _bucket, _sum or _count series", where, name)
		return
	}
	base := name
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, suffix); ok && names[b] {
			if !slices.Contains(histograms, b) {
				t.Errorf("%s: %s: %s is not a histogram", where, name, b)
			}
			base = b
		}
	}
	if !names[base] {
		t.Errorf("%s: %s is not a metric the services expose (%s)", where, name, metricNamesFile)
	}
}

type grafanaTarget struct {
	RefID        string `json:"refId"`
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat"`
	Datasource   *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
}

type grafanaPanel struct {
	ID      int                      `json:"id"`
	Type    string                   `json:"type"`
	Title   string                   `json:"title"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []grafanaTarget          `json:"targets"`
	Panels  []grafanaPanel           `json:"panels"`
}

type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// labelValues matches Grafana's label_values(metric, label) variable query.
var labelValues = regexp.MustCompile(`^label_values\(\s*(.+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

// TestDashboardQueries parses every query of the Grafana dashboard with the PromQL parser and
// checks that each metric it selects is one the services expose: no dead panel.
func TestDashboardQueries(t *testing.T) {
	names := metricNames(t)
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("dashboard uid %q title %q schemaVersion %d: all are needed for provisioning", d.UID, d.Title, d.SchemaVersion)
	}
	used := map[string]bool{}
	ids := map[int]bool{}
	var walk func(ps []grafanaPanel)
	queries := 0
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			where := "panel " + p.Title
			if ids[p.ID] {
				t.Errorf("%s: id %d is not unique", where, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: gridPos %+v does not fit the 24 columns", where, p.GridPos)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s has no query", where)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if refs[tg.RefID] || tg.RefID == "" {
					t.Errorf("%s: refId %q missing or repeated", where, tg.RefID)
				}
				refs[tg.RefID] = true
				if tg.Datasource == nil || tg.Datasource.Type != "prometheus" {
					t.Errorf("%s %s: datasource %+v, want the prometheus one", where, tg.RefID, tg.Datasource)
				}
				queries++
				for _, name := range exprMetrics(t, where+" "+tg.RefID, tg.Expr) {
					checkMetric(t, names, where+" "+tg.RefID, name)
					used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")] = true
				}
			}
		}
	}
	walk(d.Panels)
	if queries == 0 {
		t.Fatal("the dashboard has no query")
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Errorf("variable %s: query %s: %v", v.Name, v.Query, err)
			}
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, q.Query)
			continue
		}
		for _, name := range exprMetrics(t, "variable "+v.Name, m[1]) {
			checkMetric(t, names, "variable "+v.Name, name)
		}
	}
	// What the dashboard is for: every area has a panel.
	for _, want := range []string{
		"ticketflow_http_requests_total", "ticketflow_http_request_duration_seconds",
		"ticketflow_kafka_consumer_lag", "ticketflow_step_duration_seconds", "ticketflow_run_duration_seconds",
		"ticketflow_notifier_connections", "ticketflow_notifier_slow_client_disconnects_total",
		"ticketflow_projector_batch_seconds", "ticketflow_pg_pool_acquired_conns", "ticketflow_pg_pool_max_conns",
		"ticketflow_kafka_produce_bytes_total", "ticketflow_kafka_fetch_bytes_total", "ticketflow_llm_tokens_total",
	} {
		if !used[want] {
			t.Errorf("no dashboard panel queries %s", want)
		}
	}
}

// TestAlertRules validates alerts.yaml with Prometheus' own rule-file parser (unknown fields,
// PromQL syntax, templates, durations) and checks every metric its expressions select.
func TestAlertRules(t *testing.T) {
	names := metricNames(t)
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.UTF8Validation, promqlParser, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		t.Errorf("rulefmt: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	alerts := map[string]rulefmt.Rule{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a recording rule %s; this file holds alerts only", g.Name, r.Record)
				continue
			}
			if _, dup := alerts[r.Alert]; dup {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			alerts[r.Alert] = r
			where := "alert " + r.Alert
			for _, name := range exprMetrics(t, where, r.Expr) {
				checkMetric(t, names, where, name)
			}
			if r.For == 0 {
				t.Errorf("%s: no `for`: one bad scrape would page", where)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", where, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs summary and description annotations", where)
			}
		}
	}
	// The alerts issue #13 asks for, by the metric each one watches.
	for alert, metric := range map[string]string{
		"TicketflowConsumerLagHigh":       "ticketflow_kafka_consumer_lag",
		"TicketflowHTTPErrorRate":         "ticketflow_http_requests_total",
		"TicketflowStepP99High":           "ticketflow_step_duration_seconds_bucket",
		"TicketflowSlowClientDisconnects": "ticketflow_notifier_slow_client_disconnects_total",
		"TicketflowPgPoolSaturated":       "ticketflow_pg_pool_acquired_conns",
	} {
		r, ok := alerts[alert]
		if !ok {
			t.Errorf("no alert %s", alert)
			continue
		}
		if !slices.Contains(exprMetrics(t, alert, r.Expr), metric) {
			t.Errorf("alert %s does not query %s: %s", alert, metric, r.Expr)
		}
	}
}

// TestObservabilityFiles checks that the helper fixtures the tests use exist (a rename would
// otherwise surface only as a compose mount of a missing file).
func TestObservabilityFiles(t *testing.T) {
	for _, f := range []string{metricNamesFile, dashboardFile, alertsFile, prometheusFile,
		"observability/grafana/provisioning/datasources/prometheus.yaml",
		"observability/grafana/provisioning/dashboards/ticketflow.yaml"} {
		if _, err := os.Stat(filepath.FromSlash(f)); err != nil {
			t.Error(err)
		}
	}
}
