package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/postgres"
)

func runToken(args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	sub := fs.String("sub", "dev", "user id (sub claim)")
	role := fs.String("role", auth.RoleAdmin, "admin or user")
	ttl := fs.Duration("ttl", 24*time.Hour, "validity")
	if err := fs.Parse(args); err != nil {
		return err
	}
	secret := os.Getenv("TICKETFLOW_JWT_SECRET")
	if secret == "" {
		s, err := readSecret(dataDir())
		if err != nil {
			return errors.New("TICKETFLOW_JWT_SECRET is not set and no dev secret exists yet (run `ticketflow dev` once)")
		}
		secret = s
	}
	v, err := auth.NewVerifier(secret)
	if err != nil {
		return err
	}
	tok, err := v.Issue(*sub, *role, *ttl)
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

func runMigrate() error {
	cfg, err := config.Load[config.Postgres]()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := postgres.EnsureDatabase(ctx, cfg.URL); err != nil {
		return err
	}
	return postgres.Migrate(cfg.URL)
}
