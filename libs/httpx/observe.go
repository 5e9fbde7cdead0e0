package httpx

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/gofiber/contrib/otelfiber/v2"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// WithObservability gives every request a server span (otelfiber, continuing an incoming
// traceparent), RED metrics per route on reg (ticketflow_http_requests_total and
// ticketflow_http_request_duration_seconds by service, route, method and status, exemplars
// carrying the trace id; service is the process's, "ticketflow" for `ticketflow dev`) and an access log line on log (its trace_id added by logging.TraceHandler). Probe and scrape paths log at debug only.
func WithObservability(service string, reg prometheus.Registerer, log *slog.Logger) Option {
	m := newHTTPMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"service": service}, reg))
	return func(_ *fiber.Config, pre *[]fiber.Handler) {
		*pre = append(*pre, otelfiber.Middleware(otelfiber.WithCollectClientIP(false), otelfiber.WithCustomAttributes(withoutQuery)), m.handler(log))
	}
}

// withoutQuery replaces otelfiber's http.target and http.url (the last value of a key wins) by
// the path alone: WebSocket URLs carry credentials in their query (?access_token=, ?ticket=),
// which must not end up in a trace backend.
func withoutQuery(c *fiber.Ctx) []attribute.KeyValue {
	path := utils.CopyString(c.Path())
	return []attribute.KeyValue{
		attribute.String("http.target", path),
		attribute.String("http.url", c.Protocol()+"://"+utils.CopyString(c.Hostname())+path),
	}
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	labels := []string{"route", "method", "status"}
	return &httpMetrics{
		requests: telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ticketflow_http_requests_total", Help: "HTTP requests answered, by route, method and status.",
		}, labels)),
		duration: telemetry.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ticketflow_http_request_duration_seconds", Help: "Time to answer an HTTP request, by route, method and status.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, labels)),
	}
}

// quietPaths are polled by orchestrators and Prometheus: their access lines are debug.
var quietPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

func (m *httpMetrics) handler(log *slog.Logger) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		if err := c.Next(); err != nil {
			// Render the error now (as the app would after the chain) so the status is known.
			trace.SpanFromContext(c.UserContext()).RecordError(err)
			if herr := c.App().Config().ErrorHandler(c, err); herr != nil {
				var fe *fiber.Error
				code := fiber.StatusInternalServerError
				if errors.As(herr, &fe) {
					code = fe.Code
				}
				c.Status(code)
			}
		}
		elapsed := time.Since(start)
		route, method := c.Route().Path, c.Method()
		status := strconv.Itoa(c.Response().StatusCode())
		ctx := c.UserContext()
		m.requests.WithLabelValues(route, method, status).Inc()
		telemetry.Observe(ctx, m.duration.WithLabelValues(route, method, status), elapsed.Seconds())
		level := slog.LevelInfo
		if quietPaths[c.Path()] {
			level = slog.LevelDebug
		}
		log.LogAttrs(ctx, level, "http request", slog.String("method", method), slog.String("route", route),
			slog.String("path", c.Path()), slog.Int("status", c.Response().StatusCode()),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000)) // trace_id: logging.TraceHandler
		return nil
	}
}
