-- ticketflow's database roles: one least-privilege login role per service, run by the migration
-- step right after `ticketflow migrate`, as the role that owns the schema (compose: the
-- `db-roles` service; Kubernetes: the `ticketflow-migrate` Job). Idempotent and convergent:
-- every run re-creates missing roles, resets their attributes and passwords, revokes every table
-- privilege they hold and grants exactly the list below, in one transaction (the services never
-- see a moment without their grants).
--
--   psql "$OWNER_DATABASE_URL" -v ON_ERROR_STOP=1 -f roles.sql
--
-- Passwords come from the environment (never the command line, which `ps` shows):
--   TICKETFLOW_COMMAND_DB_PASSWORD, TICKETFLOW_PROCESSOR_DB_PASSWORD,
--   TICKETFLOW_PROJECTOR_DB_PASSWORD, TICKETFLOW_NOTIFIER_DB_PASSWORD
-- Role names default to ticketflow_<service>; override with -v command_role=... (the tests do,
-- since roles are cluster-wide).
--
-- Grants follow the SQL each service runs (deploy/roles_test.go checks them against the Go
-- sources, and against a real PostgreSQL):
--   command    reads the projections and consumer_offsets (to wait for its own writes) and
--              run_artifacts; owns idempotency_keys.
--   processor  owns its processor_* tables and run_artifacts.
--   projector  owns the projections (tickets, runs, step_runs, ticket_events, llm_calls) and
--              consumer_offsets (its offsets, in the same transaction as the rows).
--   notifier   reads tickets (owner and partition of a watched ticket); owns ws_ticket_uses.
-- Every service also reads schema_migrations: at start it checks the schema version (golang-migrate
-- needs SELECT on it to see there is nothing to do; without INSERT it can never mark the schema
-- dirty).
-- Tables that a later migration adds (run_artifacts, ws_ticket_uses) are granted once they exist;
-- the migration step runs this file after every migration, so no ALTER DEFAULT PRIVILEGES on
-- tables is used: a default would hand every future table to a service that may not need it.

\set ON_ERROR_STOP on
\set QUIET on

-- Each role name's default, unless -v gave one.
\if :{?command_role} \else \set command_role ticketflow_command \endif
\if :{?processor_role} \else \set processor_role ticketflow_processor \endif
\if :{?projector_role} \else \set projector_role ticketflow_projector \endif
\if :{?notifier_role} \else \set notifier_role ticketflow_notifier \endif

\getenv command_password TICKETFLOW_COMMAND_DB_PASSWORD
\getenv processor_password TICKETFLOW_PROCESSOR_DB_PASSWORD
\getenv projector_password TICKETFLOW_PROJECTOR_DB_PASSWORD
\getenv notifier_password TICKETFLOW_NOTIFIER_DB_PASSWORD
-- The variables that are not set (:{?name} is false), listed in missing_passwords; \gset leaves
-- it unset when the list is NULL, that is when every password is set.
SELECT string_agg(name, ', ') AS missing_passwords
FROM (VALUES
    ('TICKETFLOW_COMMAND_DB_PASSWORD', :{?command_password}),
    ('TICKETFLOW_PROCESSOR_DB_PASSWORD', :{?processor_password}),
    ('TICKETFLOW_PROJECTOR_DB_PASSWORD', :{?projector_password}),
    ('TICKETFLOW_NOTIFIER_DB_PASSWORD', :{?notifier_password})
) AS p(name, present)
WHERE NOT present
\gset
\if :{?missing_passwords}
\echo 'roles.sql: not set:' :missing_passwords
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: every service database password must be set (see above)'; END $$;
\endif

BEGIN;

-- Placeholders and short passwords are refused: the repository's templates hold placeholders,
-- and a role password is a network credential.
SELECT set_config('ticketflow.weak_passwords', coalesce(string_agg(name, ', '), ''), true)
FROM (VALUES
    ('TICKETFLOW_COMMAND_DB_PASSWORD', :'command_password'),
    ('TICKETFLOW_PROCESSOR_DB_PASSWORD', :'processor_password'),
    ('TICKETFLOW_PROJECTOR_DB_PASSWORD', :'projector_password'),
    ('TICKETFLOW_NOTIFIER_DB_PASSWORD', :'notifier_password')
) AS p(name, value)
WHERE length(value) < 16
   OR regexp_replace(lower(value), '[^a-z0-9]', '', 'g') ~ '(changeme|placeholder|example|insecure|password)'
\gset ignored_
DO $$
BEGIN
    IF current_setting('ticketflow.weak_passwords') <> '' THEN
        RAISE EXCEPTION 'roles.sql: % must be at least 16 characters and not a placeholder (e.g. openssl rand -hex 24)',
            current_setting('ticketflow.weak_passwords');
    END IF;
END $$;

-- CREATE ROLE IF NOT EXISTS.
SELECT format('CREATE ROLE %I', r)
FROM unnest(ARRAY[:'command_role', :'processor_role', :'projector_role', :'notifier_role']) AS r
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r)
\gexec

-- Attributes are reset on every run, so a role edited by hand converges back. NOINHERIT: a role
-- granted to one of these by mistake lends it nothing.
ALTER ROLE :"command_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD :'command_password';
ALTER ROLE :"processor_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD :'processor_password';
ALTER ROLE :"projector_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD :'projector_password';
ALTER ROLE :"notifier_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD :'notifier_password';

-- The database: only ticketflow's roles connect; nobody but the owner creates objects.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database()) \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I, %I, %I, %I', current_database(),
              :'command_role', :'processor_role', :'projector_role', :'notifier_role') \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"command_role", :"processor_role", :"projector_role", :"notifier_role";
-- Functions the owner creates later are executable by PUBLIC by default; none is meant for the
-- services.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- Start from nothing, then grant exactly the list.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"command_role", :"processor_role", :"projector_role", :"notifier_role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM :"command_role", :"processor_role", :"projector_role", :"notifier_role";

-- grants: (role, privileges, table name or LIKE pattern). A pattern grants every table it matches
-- now; a name of a table that does not exist yet is skipped until the migration that adds it.
SELECT format('GRANT %s ON TABLE %I.%I TO %I', g.privileges, n.nspname, c.relname, g.role)
FROM (VALUES
    (:'command_role',   'SELECT',                         'schema_migrations'),
    (:'command_role',   'SELECT',                         'tickets'),
    (:'command_role',   'SELECT',                         'runs'),
    (:'command_role',   'SELECT',                         'step_runs'),
    (:'command_role',   'SELECT',                         'ticket_events'),
    (:'command_role',   'SELECT',                         'llm_calls'),
    (:'command_role',   'SELECT',                         'consumer_offsets'),
    (:'command_role',   'SELECT',                         'run_artifacts'),
    (:'command_role',   'SELECT, INSERT, UPDATE, DELETE', 'idempotency_keys'),

    (:'processor_role', 'SELECT',                         'schema_migrations'),
    (:'processor_role', 'SELECT, INSERT, UPDATE, DELETE', 'processor\_%'),
    (:'processor_role', 'SELECT, INSERT, UPDATE, DELETE', 'run_artifacts'),

    (:'projector_role', 'SELECT',                         'schema_migrations'),
    (:'projector_role', 'SELECT, INSERT, UPDATE, DELETE', 'tickets'),
    (:'projector_role', 'SELECT, INSERT, UPDATE, DELETE', 'runs'),
    (:'projector_role', 'SELECT, INSERT, UPDATE, DELETE', 'step_runs'),
    (:'projector_role', 'SELECT, INSERT, UPDATE, DELETE', 'ticket_events'),
    (:'projector_role', 'SELECT, INSERT, UPDATE, DELETE', 'llm_calls'),
    (:'projector_role', 'SELECT, INSERT, UPDATE, DELETE', 'consumer_offsets'),

    (:'notifier_role',  'SELECT',                         'schema_migrations'),
    (:'notifier_role',  'SELECT',                         'tickets'),
    (:'notifier_role',  'SELECT, INSERT, UPDATE, DELETE', 'ws_ticket_uses')
) AS g(role, privileges, pattern)
JOIN pg_class c ON c.relname LIKE g.pattern AND c.relkind IN ('r', 'p')
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
ORDER BY g.role, c.relname
\gexec

-- Sequences behind those tables (none today; identity columns would need them).
SELECT format('GRANT USAGE, SELECT ON SEQUENCE %I.%I TO %I', n.nspname, s.relname, r.rolname)
FROM pg_class s
JOIN pg_namespace n ON n.oid = s.relnamespace AND n.nspname = 'public'
JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i')
JOIN pg_class t ON t.oid = d.refobjid
JOIN pg_roles r ON r.rolname IN (:'command_role', :'processor_role', :'projector_role', :'notifier_role')
WHERE s.relkind = 'S' AND has_table_privilege(r.rolname, t.oid, 'INSERT')
\gexec

COMMIT;
\echo 'roles.sql: database roles are up to date'
