#!/bin/sh
# Writes random secrets for the dev overlay into secrets/ (gitignored), once. Never overwrites:
# the in-cluster PostgreSQL keeps the owner password it was first started with.
set -eu
cd "$(dirname "$0")"
if [ -e secrets ]; then
  echo "generate-secrets.sh: secrets/ exists; not overwriting it" >&2
  exit 1
fi
umask 077
mkdir secrets
# 32 random bytes as hex: URL-safe (the passwords go into DATABASE_URL).
for name in jwt-secret db-owner db-command db-processor db-projector db-notifier; do
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "secrets/$name"
done
echo "generate-secrets.sh: wrote secrets/; now: kubectl apply -k $(pwd)" >&2
