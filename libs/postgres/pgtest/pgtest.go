// Package pgtest gives integration tests their own PostgreSQL database.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/postgres"
)

// ServerURL is the server integration tests use: TICKETFLOW_TEST_DATABASE_URL or the
// local default (trust auth on 127.0.0.1).
func ServerURL() string {
	if u := os.Getenv("TICKETFLOW_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewDatabase creates a uniquely named, migrated database for one test and drops it when
// the test ends. Tests never share or depend on leftover databases.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server := ServerURL()
	cfg, err := pgx.ParseConfig(server)
	if err != nil {
		t.Fatalf("test database url: %v", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "ticketflow_test_" + hex.EncodeToString(b)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("PostgreSQL is required for this test (%s): %v", server, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	dsn := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
	if cfg.Password != "" {
		dsn = fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Password, cfg.Host, cfg.Port, name)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	if err := postgres.Migrate(dsn); err != nil {
		t.Fatalf("migrate test database: %v", err)
	}
	return dsn
}

// NewPool is a pool on a database of NewDatabase, closed when the test ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	db, err := pgxpool.New(context.Background(), NewDatabase(t))
	if err != nil {
		t.Fatalf("test database pool: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}
