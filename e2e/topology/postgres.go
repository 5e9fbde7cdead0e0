package topology

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Postgres is a private PostgreSQL 15 server (initdb in a temp dir, its own port), so a test
// can restart it under load without disturbing anything else that uses the machine's server.
type Postgres struct {
	Port   int
	dir    string
	binDir string
	asUser []string // runuser prefix when we are root (postgres refuses to run as root)
}

// PostgresBinDir finds the server binaries (TICKETFLOW_PG_BINDIR or Debian's layout).
func PostgresBinDir() (string, error) {
	if d := os.Getenv("TICKETFLOW_PG_BINDIR"); d != "" {
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		return "", errors.New("no PostgreSQL server binaries (set TICKETFLOW_PG_BINDIR)")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// StartPostgres creates a cluster under dir and starts it on a free port.
func StartPostgres(ctx context.Context, dir string) (*Postgres, error) {
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	p := &Postgres{Port: ports[0], dir: dir, binDir: bin}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		p.asUser = []string{"runuser", "-u", "postgres", "--"}
		if out, err := exec.CommandContext(ctx, "chown", "-R", "postgres", dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chown %s: %w: %s", dir, err, out)
		}
		// runuser needs to traverse the parents (t.TempDir is 0700 root).
		for d := filepath.Dir(dir); d != "/" && d != "."; d = filepath.Dir(d) {
			if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
				_ = os.Chmod(d, st.Mode().Perm()|0o011)
			}
		}
	}
	if err := p.run(ctx, "initdb", "-D", p.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, err
	}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Postgres) data() string { return filepath.Join(p.dir, "data") }

func (p *Postgres) run(ctx context.Context, tool string, args ...string) error {
	argv := append(append([]string{}, p.asUser...), append([]string{filepath.Join(p.binDir, tool)}, args...)...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (p *Postgres) options() string {
	// fsync off: the server is only ever shut down cleanly (restart -m fast), the OS does not
	// crash in a test, and it saves the shared disk.
	return "-p " + strconv.Itoa(p.Port) + " -k " + p.dir + " -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400"
}

func (p *Postgres) start(ctx context.Context) error {
	return p.run(ctx, "pg_ctl", "-D", p.data(), "-o", p.options(), "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "60", "start")
}

// URL is the connection string of database name on this server.
func (p *Postgres) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, name)
}

// Restart stops the server (fast: open connections are cut, as in a failover) and starts it.
func (p *Postgres) Restart(ctx context.Context) error {
	return p.run(ctx, "pg_ctl", "-D", p.data(), "-o", p.options(), "-l", filepath.Join(p.dir, "server.log"), "-m", "fast", "-w", "-t", "60", "restart")
}

// Close stops the server immediately.
func (p *Postgres) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = p.run(ctx, "pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "stop")
}
