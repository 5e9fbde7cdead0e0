#!/bin/sh
# Writes .env at the repository root with fresh random secrets for docker-compose.yml, which
# refuses to start without them. Never overwrites: POSTGRES_PASSWORD is fixed when the
# postgres-data volume is first initialised, so a new one would lock `migrate` out (the service
# passwords may change at any time: db-roles resets them on every start).
set -eu
cd "$(dirname "$0")/.."
if [ -e .env ]; then
  echo "compose-secrets.sh: .env exists; not overwriting it (delete it to start over, together with the postgres-data volume)" >&2
  exit 1
fi
# 32 random bytes as hex: URL-safe (the passwords go into DATABASE_URL) and far from anything
# libs/auth or roles.sql refuse.
random() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }
umask 077
{
  echo "TICKETFLOW_JWT_SECRET=$(random)"
  echo "POSTGRES_PASSWORD=$(random)"
  echo "TICKETFLOW_COMMAND_DB_PASSWORD=$(random)"
  echo "TICKETFLOW_PROCESSOR_DB_PASSWORD=$(random)"
  echo "TICKETFLOW_PROJECTOR_DB_PASSWORD=$(random)"
  echo "TICKETFLOW_NOTIFIER_DB_PASSWORD=$(random)"
} > .env
echo "compose-secrets.sh: wrote .env (mode 0600); now: docker compose up --build -d" >&2
