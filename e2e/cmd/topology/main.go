// Command topology starts ticketflow locally in its deployed shape — `ticketflow broker` plus
// every service as separate processes (2 command, 3 processor, 2 projector, 3 notifier by
// default) — prints every replica's URL and a token, and stops it all on Ctrl-C.
// `make topology` runs it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ticketflow/ticketflow/e2e/topology"
	"github.com/ticketflow/ticketflow/libs/auth"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "topology:", err)
		os.Exit(1)
	}
}

func run() error {
	shape := topology.DefaultShape
	flag.IntVar(&shape.Brokers, "brokers", shape.Brokers, "brokers inside the broker process")
	flag.IntVar(&shape.Command, "command", shape.Command, "command replicas")
	flag.IntVar(&shape.Processor, "processor", shape.Processor, "processor replicas")
	flag.IntVar(&shape.Projector, "projector", shape.Projector, "projector replicas")
	flag.IntVar(&shape.Notifier, "notifier", shape.Notifier, "notifier replicas")
	dir := flag.String("dir", ".data/topology", "broker data, work dirs and one log per instance (logs/)")
	bin := flag.String("bin", "", "directory with prebuilt binaries (default: build them into <dir>/bin)")
	dbURL := flag.String("database-url", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ticketflow_topology?sslmode=disable"), "PostgreSQL database shared by every service (created if missing)")
	partitions := flag.Int("partitions", 12, "partitions of the event topic")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if *bin == "" {
		root, err := topology.RepoRoot()
		if err != nil {
			return err
		}
		*bin = filepath.Join(absDir, "bin")
		fmt.Println("building ticketflow and the four services into", *bin)
		if err := topology.Build(ctx, root, *bin); err != nil {
			return err
		}
	}
	secret, err := storedSecret(absDir)
	if err != nil {
		return err
	}
	top, err := topology.Start(ctx, shape, topology.Options{
		BinDir: *bin, Dir: absDir, DatabaseURL: *dbURL, JWTSecret: secret, Partitions: *partitions,
		Env: []string{"TICKETFLOW_ALLOW_FILE_REPOS=true"}, Supervise: true,
	})
	if err != nil {
		return err
	}
	v, err := auth.NewVerifier(secret)
	if err != nil {
		top.Close()
		return err
	}
	token, _ := v.Issue("dev", auth.RoleAdmin, 7*24*time.Hour)
	fmt.Printf("\n  ticketflow topology is up (Ctrl-C stops it; logs in %s/logs)\n\n", absDir)
	fmt.Printf("  KAFKA_BROKERS=%s\n", strings.Join(top.Brokers, ","))
	for _, k := range topology.Services {
		for _, in := range top.Instances(k) {
			fmt.Printf("  %-12s %s\n", in.Name, in.URL())
		}
	}
	cmd, notif := top.Instances(topology.Command)[0], top.Instances(topology.Notifier)[0]
	fmt.Printf("\n  export TOKEN=%s\n", token)
	fmt.Printf("  curl -X POST %s/api/tickets -H 'Content-Type: application/json' -H \"Authorization: Bearer $TOKEN\" -d '{\"title\":\"demo\"}'\n", cmd.URL())
	fmt.Printf("  wscat -c \"%s/ws/tickets/<id>?access_token=$TOKEN\"\n\n", notif.WSURL())

	<-ctx.Done()
	fmt.Println("stopping")
	for _, k := range append(append([]topology.Kind{}, topology.Services...), topology.Broker) {
		for _, in := range top.Instances(k) {
			if err := in.Terminate(15 * time.Second); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// storedSecret keeps one JWT secret per topology dir so tokens survive restarts.
func storedSecret(dir string) (string, error) {
	if s := os.Getenv("TICKETFLOW_JWT_SECRET"); s != "" {
		return s, nil
	}
	path := filepath.Join(dir, "jwt-secret")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	s := hex.EncodeToString(b)
	return s, os.WriteFile(path, []byte(s+"\n"), 0o600)
}
