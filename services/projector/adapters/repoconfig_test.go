package adapters

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
	"github.com/ticketflow/ticketflow/services/projector/app"
)

// RepositoryConfigLoaded lands in runs.repository_config as the event's data; a second one
// (a retried prepare_repository) replaces the first; other runs keep NULL.
func TestRepositoryConfigIsStoredOnItsRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := NewStore(db, "ticket-events")
	ev := func(run string, p events.Payload) events.Event {
		return events.Event{Envelope: events.MustNew("t1", run, "processor", p)}
	}
	first := &events.RepositoryConfigLoadedData{Source: "default", Config: events.RepositoryConfig{CICommand: "make", CICommandFrom: "ticket", MaxSteps: 40}}
	second := &events.RepositoryConfigLoadedData{Source: "file", SHA256: "ab", SizeBytes: 42, Config: events.RepositoryConfig{CICommand: "sh ci.sh",
		CICommandFrom: "repository", CITimeoutMS: 30000, Editable: []string{"src/**"}, MaxSteps: 6, MaxTokens: 100, MaxCostUSD: 0.5,
		MaxDurationMS: 60000, Notes: []string{"refused"}}}
	err = s.InBatch(ctx, 0, func(b app.Batch) error {
		for _, run := range []string{"r1", "r2"} {
			req := &events.ProcessingRequestedData{RequestedBy: "alice", Reason: "start"}
			if err := b.RequestRun(ctx, ev(run, req), req, "pending", ""); err != nil {
				return err
			}
		}
		for _, d := range []*events.RepositoryConfigLoadedData{first, second} {
			if err := b.SetRepositoryConfig(ctx, ev("r1", d), d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := db.QueryRow(ctx, `SELECT repository_config FROM runs WHERE id = 'r1'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var got events.RepositoryConfigLoadedData
	if err := json.Unmarshal(raw, &got); err != nil || !reflect.DeepEqual(&got, second) {
		t.Errorf("stored %s (%v), want %+v", raw, err, second)
	}
	var null bool
	if err := db.QueryRow(ctx, `SELECT repository_config IS NULL FROM runs WHERE id = 'r2'`).Scan(&null); err != nil || !null {
		t.Errorf("a run without RepositoryConfigLoaded: null=%v (%v)", null, err)
	}
}
