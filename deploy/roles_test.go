package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"go/scanner"
	"go/token"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ticketflow/ticketflow/libs/postgres"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
)

var rolesSQL = filepath.Join("postgres", "roles.sql")

// announcedTables are tables other work adds soon, granted by roles.sql ahead of their
// migration (a grant on a missing table is skipped), with the service that writes them and the
// one that reads them. Their columns are the agreed ones.
var announcedTables = map[string]string{
	"run_artifacts":  `CREATE TABLE IF NOT EXISTS run_artifacts (run_id text NOT NULL, ticket_id text NOT NULL, name text NOT NULL, content bytea NOT NULL, size_bytes bigint NOT NULL, lines integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (run_id, name))`,
	"ws_ticket_uses": `CREATE TABLE IF NOT EXISTS ws_ticket_uses (jti text PRIMARY KEY, used_at timestamptz NOT NULL DEFAULT now())`,
}

// announcedUse is what each service will do with the announced tables.
var announcedUse = map[string]map[string][]string{
	"command":   {"run_artifacts": {"SELECT"}},
	"processor": {"run_artifacts": {"SELECT", "INSERT"}},
	"notifier":  {"ws_ticket_uses": {"SELECT", "INSERT"}},
}

type grant struct {
	privileges []string
	pattern    *regexp.Regexp
	raw        string
}

// parseGrants reads roles.sql's grant list: service → grants.
func parseGrants(t *testing.T) map[string][]grant {
	t.Helper()
	raw, err := os.ReadFile(rolesSQL)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]grant{}
	for _, m := range regexp.MustCompile(`\(:'(\w+)_role',\s*'([A-Z, ]+)',\s*'([^']+)'\)`).FindAllStringSubmatch(string(raw), -1) {
		var privs []string
		for _, p := range strings.Split(m[2], ",") {
			privs = append(privs, strings.TrimSpace(p))
		}
		// LIKE: % is any run, _ any one character, \_ a literal underscore.
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(m[3]); i++ {
			switch c := m[3][i]; {
			case c == '\\' && i+1 < len(m[3]):
				i++
				re.WriteString(regexp.QuoteMeta(string(m[3][i])))
			case c == '%':
				re.WriteString(".*")
			case c == '_':
				re.WriteString(".")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		out[m[1]] = append(out[m[1]], grant{privs, regexp.MustCompile(re.String()), m[3]})
	}
	if len(out) != len(goServices) {
		t.Fatalf("roles.sql grants to %v; want the four services", out)
	}
	return out
}

// schemaTables are the tables the migrations create, plus the announced ones.
func schemaTables(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "libs", "postgres", "migrations", "*.up.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	var tables []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?i)CREATE TABLE (?:IF NOT EXISTS )?"?(\w+)"?`).FindAllStringSubmatch(string(raw), -1) {
			tables = append(tables, strings.ToLower(m[1]))
		}
	}
	for name := range announcedTables {
		if !slices.Contains(tables, name) {
			tables = append(tables, name)
		}
	}
	slices.Sort(tables)
	return tables
}

// codeTableUse scans the string literals of a service's non-test Go sources for SQL naming a
// table, and returns the privileges each statement kind needs: table → privileges.
func codeTableUse(t *testing.T, service string, tables []string) map[string][]string {
	t.Helper()
	names := strings.Join(tables, "|")
	kinds := []struct {
		re   *regexp.Regexp
		priv string
	}{
		{regexp.MustCompile(`(?i)\bINSERT\s+INTO\s+"?(` + names + `)\b`), "INSERT"},
		{regexp.MustCompile(`(?i)\bUPDATE\s+"?(` + names + `)\b`), "UPDATE"},
		{regexp.MustCompile(`(?i)\bDELETE\s+FROM\s+"?(` + names + `)\b`), "DELETE"},
		{regexp.MustCompile(`(?i)\bTRUNCATE\s+(?:TABLE\s+)?"?(` + names + `)\b`), "TRUNCATE"},
		{regexp.MustCompile(`(?i)\b(?:FROM|JOIN)\s+"?(` + names + `)\b`), "SELECT"},
	}
	upsert := regexp.MustCompile(`(?is)\bINSERT\s+INTO\s+"?(` + names + `)\b.*\bDO\s+UPDATE\b`)
	use := map[string][]string{}
	add := func(table, priv string) {
		if !slices.Contains(use[table], priv) {
			use[table] = append(use[table], priv)
		}
	}
	root := filepath.Join(repoRoot, "services", service)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var s scanner.Scanner
		fset := token.NewFileSet()
		s.Init(fset.AddFile(path, -1, len(src)), src, nil, 0)
		for {
			_, tok, lit := s.Scan()
			if tok == token.EOF {
				break
			}
			if tok != token.STRING {
				continue
			}
			for _, k := range kinds {
				for _, m := range k.re.FindAllStringSubmatch(lit, -1) {
					add(strings.ToLower(m[1]), k.priv)
				}
			}
			for _, m := range upsert.FindAllStringSubmatch(lit, -1) {
				add(strings.ToLower(m[1]), "UPDATE")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for table, privs := range announcedUse[service] {
		for _, p := range privs {
			add(table, p)
		}
	}
	return use
}

// TestRolesCoverCode checks roles.sql against the services' SQL: each role has every privilege
// its service's statements need, and no grant that no statement of the service uses.
func TestRolesCoverCode(t *testing.T) {
	grants := parseGrants(t)
	tables := schemaTables(t)
	for service := range goServices {
		use := codeTableUse(t, service, tables)
		if len(use) == 0 {
			t.Errorf("%s: no SQL found in services/%s; the scan is broken", service, service)
		}
		for table, privs := range use {
			for _, p := range privs {
				if !slices.ContainsFunc(grants[service], func(g grant) bool {
					return g.pattern.MatchString(table) && slices.Contains(g.privileges, p)
				}) {
					t.Errorf("%s runs SQL needing %s on %s; roles.sql does not grant it to %s's role", service, p, table, service)
				}
			}
		}
		for _, g := range grants[service] {
			if g.raw == "schema_migrations" {
				continue
			}
			used := false
			for table := range use {
				used = used || g.pattern.MatchString(table)
			}
			if !used {
				t.Errorf("roles.sql grants %s %v on %s, which its code never queries", service, g.privileges, g.raw)
			}
		}
	}
}

// TestRolesAgainstPostgres runs the migrations and roles.sql on a real PostgreSQL, then connects
// as each service's role: its service's typical statements succeed, other services' tables are
// refused, and the service's start-up migration check passes without any write privilege.
func TestRolesAgainstPostgres(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("no psql (Debian: postgresql-client-15): roles.sql is not run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn := pgtest.NewDatabase(t)
	owner, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(context.Background())
	for _, ddl := range announcedTables {
		if _, err := owner.Exec(ctx, ddl); err != nil {
			t.Fatal(err)
		}
	}

	// Roles are cluster-wide: unique names, dropped at the end.
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	roles := map[string]string{}
	passwords := map[string]string{}
	args := []string{"-X", "-q", "-d", dsn, "-f", rolesSQL}
	environ := os.Environ()
	for service, r := range dbRoles {
		roles[service] = "tftest_" + hex.EncodeToString(suffix) + "_" + service
		pw := make([]byte, 16)
		_, _ = rand.Read(pw)
		passwords[service] = hex.EncodeToString(pw)
		args = append(args, "-v", service+"_role="+roles[service])
		environ = append(environ, r.passwordVar+"="+passwords[service])
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Logf("drop test roles: %v", err)
			return
		}
		defer conn.Close(ctx)
		for _, r := range roles {
			// The privileges in this database first, then the role (the database goes later).
			if _, err := conn.Exec(ctx, "DROP OWNED BY "+pgx.Identifier{r}.Sanitize()); err != nil {
				t.Logf("drop owned by %s: %v", r, err)
			}
			if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{r}.Sanitize()); err != nil {
				t.Logf("drop role %s: %v", r, err)
			}
		}
	})
	runRoles := func() {
		t.Helper()
		cmd := exec.CommandContext(ctx, psql, args...)
		cmd.Env = environ
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("psql -f roles.sql: %v\n%s", err, out)
		}
	}
	runRoles()
	// Idempotent and convergent: a grant added by hand is gone after the next run.
	if _, err := owner.Exec(ctx, "GRANT SELECT ON processor_runs TO "+pgx.Identifier{roles["notifier"]}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	runRoles()

	// A placeholder password is refused, and nothing changes.
	bad := exec.CommandContext(ctx, psql, args...)
	bad.Env = append(slices.Clone(environ), "TICKETFLOW_COMMAND_DB_PASSWORD=CHANGE-ME")
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "TICKETFLOW_COMMAND_DB_PASSWORD") {
		t.Errorf("roles.sql accepted a placeholder password: %v\n%s", err, out)
	}
	// So is a missing one, named.
	missing := exec.CommandContext(ctx, psql, args...)
	missing.Env = slices.DeleteFunc(slices.Clone(environ), func(kv string) bool { return strings.HasPrefix(kv, "TICKETFLOW_NOTIFIER_DB_PASSWORD=") })
	if out, err := missing.CombinedOutput(); err == nil || !strings.Contains(string(out), "not set: TICKETFLOW_NOTIFIER_DB_PASSWORD") {
		t.Errorf("roles.sql ran without TICKETFLOW_NOTIFIER_DB_PASSWORD: %v\n%s", err, out)
	}

	allowed := map[string][]string{
		"command": {
			`SELECT id, title, owner, status FROM tickets WHERE id = 't1'`,
			`SELECT ticket_id FROM runs WHERE id = 'r1'`,
			`SELECT step, outcome FROM step_runs WHERE run_id = 'r1'`,
			`SELECT partition, "offset", envelope::text FROM ticket_events WHERE ticket_id = 't1'`,
			`SELECT coalesce(max(next_offset), -1) FROM consumer_offsets WHERE consumer = 'projector'`,
			`INSERT INTO idempotency_keys (subject, key, request_hash) VALUES ('alice', 'k1', 'h')`,
			`UPDATE idempotency_keys SET status = 202, response = '{}' WHERE subject = 'alice' AND key = 'k1'`,
			`DELETE FROM idempotency_keys WHERE subject = 'alice' AND key = 'k1'`,
			`SELECT name, size_bytes, lines, content FROM run_artifacts WHERE run_id = 'r1'`,
			`SELECT pg_advisory_lock(hashtextextended('t1', 0)), pg_advisory_unlock(hashtextextended('t1', 0))`,
		},
		"processor": {
			`INSERT INTO processor_tickets (ticket_id, title) VALUES ('t1', 'x') ON CONFLICT (ticket_id) DO UPDATE SET title = excluded.title`,
			`INSERT INTO processor_runs (run_id, ticket_id, partition, request_offset, status) VALUES ('r1', 't1', 0, 0, 'active')`,
			`UPDATE processor_runs SET lease_until = now() + interval '15 seconds', owner = 'p1' WHERE status <> 'terminal'`,
			`SELECT run_id, state FROM processor_runs WHERE status <> 'terminal' FOR UPDATE`,
			`INSERT INTO run_artifacts (run_id, ticket_id, name, content, size_bytes, lines) VALUES ('r1', 't1', 'ci.log', 'x', 1, 1)`,
		},
		"projector": {
			`INSERT INTO tickets (id, title, owner, created_at, updated_at, last_partition, last_offset) VALUES ('t1', 'x', 'alice', now(), now(), 0, 0)`,
			`UPDATE tickets SET status = 'RUNNING' WHERE id = 't1'`,
			`INSERT INTO runs (id, ticket_id, status, requested_at) VALUES ('r1', 't1', 'PENDING', now())`,
			`INSERT INTO step_runs (run_id, ticket_id, step, iteration, attempt, started_at) VALUES ('r1', 't1', 'clone', 1, 1, now())`,
			`INSERT INTO ticket_events (event_id, ticket_id, type, version, occurred_at, topic_id, partition, "offset", envelope) VALUES (gen_random_uuid(), 't1', 'TicketCreated', 1, now(), 'x', 0, 0, '{}')`,
			`INSERT INTO consumer_offsets (consumer, topic, partition, next_offset, topic_id) VALUES ('projector', 'ticket-events', 0, 1, 'x') ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = excluded.next_offset`,
			`DELETE FROM consumer_offsets WHERE consumer = 'projector' AND topic = 'ticket-events'`,
		},
		"notifier": {
			`SELECT owner, last_partition FROM tickets WHERE id = 't1'`,
			`INSERT INTO ws_ticket_uses (jti) VALUES ('j1')`,
		},
	}
	denied := map[string][]string{
		"command": {
			`INSERT INTO tickets (id, title, owner, created_at, updated_at, last_partition, last_offset) VALUES ('t2', 'x', 'a', now(), now(), 0, 0)`,
			`UPDATE runs SET status = 'DONE'`,
			`SELECT * FROM processor_runs`,
			`SELECT * FROM processor_tickets`,
			`INSERT INTO run_artifacts (run_id, ticket_id, name, content, size_bytes, lines) VALUES ('r', 't', 'n', 'x', 1, 1)`,
			`SELECT * FROM ws_ticket_uses`,
			`DELETE FROM consumer_offsets`,
			`CREATE TABLE planted (x int)`,
		},
		"processor": {
			`SELECT * FROM tickets`,
			`SELECT * FROM ticket_events`,
			`SELECT * FROM idempotency_keys`,
			`SELECT * FROM consumer_offsets`,
			`SELECT * FROM ws_ticket_uses`,
			`CREATE TABLE processor_planted (x int)`,
		},
		"projector": {
			`SELECT * FROM processor_runs`,
			`SELECT * FROM idempotency_keys`,
			`SELECT * FROM run_artifacts`,
			`SELECT * FROM ws_ticket_uses`,
			`INSERT INTO schema_migrations (version, dirty) VALUES (999999, true)`,
		},
		"notifier": {
			`UPDATE tickets SET owner = 'mallory'`,
			`SELECT * FROM ticket_events`,
			`SELECT * FROM runs`,
			`SELECT * FROM idempotency_keys`,
			`SELECT * FROM processor_runs`,
			`SELECT * FROM run_artifacts`,
		},
	}
	for service := range goServices {
		roleDSN := withUser(t, dsn, roles[service], passwords[service])
		conn, err := pgx.Connect(ctx, roleDSN)
		if err != nil {
			t.Fatalf("%s: connect as %s: %v", service, roles[service], err)
		}
		for _, stmt := range allowed[service] {
			if err := inRollback(ctx, conn, stmt); err != nil {
				t.Errorf("%s: %s\n  refused: %v", service, stmt, err)
			}
		}
		for _, stmt := range denied[service] {
			err := inRollback(ctx, conn, stmt)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" { // insufficient_privilege
				t.Errorf("%s: %s\n  want permission denied, got %v", service, stmt, err)
			}
		}
		conn.Close(ctx)
		// What every service does at start (libs/platform): migrate, which with the schema up to
		// date only reads schema_migrations.
		if err := postgres.Migrate(roleDSN); err != nil {
			t.Errorf("%s: start-up migration check as %s: %v", service, roles[service], err)
		}
	}
	// The hand-made grant did not survive the second run.
	var leaked bool
	if err := owner.QueryRow(ctx, `SELECT has_table_privilege($1, 'processor_runs', 'SELECT')`, roles["notifier"]).Scan(&leaked); err != nil || leaked {
		t.Errorf("roles.sql does not converge: notifier still reads processor_runs (%v)", err)
	}
}

// inRollback runs stmt in a transaction that is rolled back, so statements do not depend on each
// other's rows.
func inRollback(ctx context.Context, conn *pgx.Conn, stmt string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, stmt)
	return err
}

func withUser(t *testing.T, dsn, user, password string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}
