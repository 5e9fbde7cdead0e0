package adapters

import (
	"context"

	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/services/processor/app"
)

// runTransactionalID is the Kafka transactional id of a run's appends: one per run, so the
// processor that takes a run over fences exactly that run's previous owner.
func runTransactionalID(runID string) string { return "ticketflow-run-" + runID }

// RunProducers opens each run's own transactional producer on the event topic.
type RunProducers struct{ kafka config.Kafka }

// NewRunProducers produces to cfg's brokers and topic.
func NewRunProducers(cfg config.Kafka) RunProducers { return RunProducers{kafka: cfg} }

// Open creates the run's transactional producer, fencing any earlier one.
func (r RunProducers) Open(ctx context.Context, runID string) (app.Producer, error) {
	tp, err := kafka.NewTxnProducer(ctx, r.kafka, runTransactionalID(runID))
	if err != nil {
		return nil, err
	}
	return tp, nil
}
