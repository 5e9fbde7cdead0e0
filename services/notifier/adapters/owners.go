package adapters

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Owners asks the tickets projection for tickets the log no longer describes (app.Owners).
type Owners struct{ db *pgxpool.Pool }

// NewOwners reads db.
func NewOwners(db *pgxpool.Pool) *Owners { return &Owners{db: db} }

// Owner returns the ticket's owner and partition; found is false for an unknown ticket.
func (o *Owners) Owner(ctx context.Context, id string) (owner string, partition int32, found bool, err error) {
	err = o.db.QueryRow(ctx, `SELECT owner, last_partition FROM tickets WHERE id = $1`, id).Scan(&owner, &partition)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, err
	}
	return owner, partition, true, nil
}
