package app

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the notifier's Prometheus series (all prefixed ticketflow_notifier_).
type Metrics struct {
	connections    *prometheus.GaugeVec // open connections by stream (ticket|all)
	sent           map[string]prometheus.Counter
	sentVec        *prometheus.CounterVec // messages written by type
	replays        *prometheus.CounterVec // resumes by result (recovered|unavailable|current_run|no_run)
	replayed       prometheus.Counter     // messages delivered from history
	slowClients    prometheus.Counter     // disconnects with 1013
	rejected       *prometheus.CounterVec // refused connections by reason
	latency        prometheus.Histogram   // occurred_at → written to the socket, live messages
	historyBytes   prometheus.Gauge
	consumedEvents prometheus.Counter
	duplicates     prometheus.Counter // records whose event id the ticket already had
}

// NewMetrics registers the series on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	const ns, sub = "ticketflow", "notifier"
	m := &Metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "connections", Help: "Open WebSocket connections by stream (ticket or all)."}, []string{"stream"}),
		sentVec: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "messages_sent_total", Help: "Messages written to sockets, by message type."}, []string{"type"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "replays_total", Help: "Connections that replayed history, by result: recovered (from a cursor), unavailable (history gone), current_run (no cursor), no_run (no cursor, no run yet)."}, []string{"result"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "replayed_messages_total", Help: "Event messages delivered from history (memory or Kafka) rather than live."}),
		slowClients: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "slow_client_disconnects_total", Help: "Connections closed with 1013 because their queue filled."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "rejected_total", Help: "Connections refused or closed at setup, by reason."}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "delivery_latency_seconds", Help: "Event occurred_at to the message written to the socket (live messages).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}),
		historyBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "history_bytes", Help: "Memory held by the per-ticket in-memory histories."}),
		consumedEvents: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "consumed_events_total", Help: "Records applied from the event topic."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "duplicate_events_total", Help: "Records carrying an event id already in the log for their ticket (never sent to clients)."}),
	}
	for _, c := range []prometheus.Collector{m.connections, m.sentVec, m.replays, m.replayed, m.slowClients,
		m.rejected, m.latency, m.historyBytes, m.consumedEvents, m.duplicates} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.sent = map[string]prometheus.Counter{}
	for _, t := range []string{TypeConnected, TypeStatusUpdate, TypeLog, TypeCIResult, TypeTicketCreated, TypeRunStarted,
		TypeStepCompleted, TypeRunRejected, TypeCancelRequested, TypeChangesRequested, TypeLogTruncated, TypeRunResumed, TypeReplayComplete,
		TypeAgentTool, TypeLLMCall, TypeHistoryUnavailable, TypePong, TypeError} {
		m.sent[t] = m.sentVec.WithLabelValues(t)
	}
	return m, nil
}

// Rejected counts a connection refused (before or at setup) for reason.
func (m *Metrics) Rejected(reason string) { m.rejected.WithLabelValues(reason).Inc() }

// Connected counts an open connection of stream ("ticket" or "all") until the returned func
// is called.
func (m *Metrics) Connected(stream string) (closed func()) {
	g := m.connections.WithLabelValues(stream)
	g.Inc()
	return g.Dec
}

func (m *Metrics) countSent(typ string) {
	if c, ok := m.sent[typ]; ok {
		c.Inc()
	}
}
