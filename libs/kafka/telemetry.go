package kafka

import (
	"context"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/telemetry"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"github.com/twmb/franz-go/plugin/kprom"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Every client NewClient builds carries kotel's tracing hooks: a produced record gets a
// "publish" span, child of the Produce context's span, and its traceparent/tracestate headers;
// a fetched record gets a "receive" span continuing the trace in its headers, in rec.Context
// (RecordContext). Tracing follows the global provider (see libs/telemetry).
//
// Metrics go to the registry Instrument names (process-wide: the services of one process
// share one /metrics): kprom's client metrics as ticketflow_kafka_* with a "client" label per
// long-lived client, and ticketflow_kafka_consumer_lag fed by ObserveLag. The processor's
// per-run transactional producers are traced but not measured: each lives for one run, and
// its series would come and go with it (an unbounded stream of client labels).

var instrumentation struct {
	mu      sync.Mutex
	reg     prometheus.Registerer
	clients int
	lag     *prometheus.GaugeVec
}

// Instrument makes clients built from now on report their metrics on reg, and registers the
// consumer lag gauge there.
func Instrument(reg prometheus.Registerer) {
	lag := telemetry.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ticketflow_kafka_consumer_lag",
		Help: "Records in the partition after the last one this consumer received (high watermark − next offset), by consumer group and partition.",
	}, []string{"group", "topic", "partition"}))
	instrumentation.mu.Lock()
	defer instrumentation.mu.Unlock()
	instrumentation.reg, instrumentation.lag = reg, lag
}

// clientHooks are the hooks NewClient installs: tracing always, metrics when measured.
func clientHooks(measured bool) []kgo.Opt {
	tracer := kotel.NewKotel(kotel.WithTracer(kotel.NewTracer()))
	opts := []kgo.Opt{kgo.WithHooks(tracer.Hooks()...)}
	instrumentation.mu.Lock()
	defer instrumentation.mu.Unlock()
	if measured && instrumentation.reg != nil {
		instrumentation.clients++
		m := kprom.NewMetrics("ticketflow", kprom.Subsystem("kafka"), kprom.Registerer(instrumentation.reg),
			kprom.WithStaticLabel(prometheus.Labels{"client": strconv.Itoa(instrumentation.clients)}))
		opts = append(opts, kgo.WithHooks(m))
	}
	return opts
}

// ObserveLag records, for every partition in fetches, how far the consumer in group is behind
// the partition's high watermark after the records fetched. Call it after each poll.
func ObserveLag(group string, fetches kgo.Fetches) {
	instrumentation.mu.Lock()
	lag := instrumentation.lag
	instrumentation.mu.Unlock()
	if lag == nil {
		return
	}
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.Err != nil || len(p.Records) == 0 {
			return
		}
		next := p.Records[len(p.Records)-1].Offset + 1
		lag.WithLabelValues(group, p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(max(p.HighWatermark-next, 0)))
	})
}

// RecordContext is ctx carrying rec's trace context (the span of its receive hook), so the
// work a record causes continues the trace of whoever appended it. ctx keeps its deadline
// and cancellation.
func RecordContext(ctx context.Context, rec *kgo.Record) context.Context {
	if rec.Context == nil {
		return ctx
	}
	if span := trace.SpanFromContext(rec.Context); span.SpanContext().IsValid() {
		return trace.ContextWithSpan(ctx, span)
	}
	return ctx
}

// RecordSpanContext is the W3C trace context in rec's headers (invalid when none): the span
// of whoever appended it, for code that reads records outside the consumer hooks (scans).
func RecordSpanContext(rec *kgo.Record) trace.SpanContext {
	ctx := propagation.TraceContext{}.Extract(context.Background(), kotel.NewRecordCarrier(rec))
	return trace.SpanContextFromContext(ctx)
}
