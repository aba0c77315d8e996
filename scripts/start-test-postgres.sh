#!/usr/bin/env bash
# Starts PostgreSQL on 127.0.0.1 for the test suite and prints its SQLAlchemy URL on stdout:
#   export CADRE_TEST_POSTGRES_URL=$(scripts/start-test-postgres.sh)
# Uses Debian's cluster (pg_lsclusters / pg_ctlcluster; postgresql comes from
# scripts/install-system-packages.sh test), making one if there is none, then a role and a
# database named cadre_test (password cadre_test; the role may create databases, so each test
# session works in a throwaway database of its own). Run as root, as postgres, or with sudo.
# On failure it says why on stderr, prints nothing on stdout and exits 1.
set -euo pipefail

ROLE=cadre_test
DATABASE=cadre_test

fail() {
  echo "start-test-postgres: $*" >&2
  exit 1
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  elif [ "$(id -un)" = postgres ]; then
    "$@"
  elif sudo -n true 2>/dev/null; then
    sudo -n -u postgres "$@"
  else
    fail "needs root, the postgres user or password-less sudo to start PostgreSQL"
  fi
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    fail "needs root or password-less sudo for: $*"
  fi
}

command -v pg_lsclusters >/dev/null || fail "PostgreSQL is not installed (apt: postgresql)"

cluster=$(pg_lsclusters -h 2>/dev/null | head -n 1 || true)
if [ -z "$cluster" ]; then
  version=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)
  [ -n "$version" ] || fail "no PostgreSQL server binaries under /usr/lib/postgresql"
  as_root pg_createcluster "$version" main >/dev/null || fail "pg_createcluster $version failed"
  cluster=$(pg_lsclusters -h | head -n 1)
fi
read -r version name port status _ <<<"$cluster"

if [ "$status" != online ]; then
  # pg_ctlcluster goes through systemd when it runs; in a container without it, it starts the
  # server directly. Either way pg_isready below is the judge.
  as_root pg_ctlcluster "$version" "$name" start >/dev/null 2>&1 \
    || as_postgres pg_ctlcluster "$version" "$name" start >/dev/null 2>&1 \
    || fail "pg_ctlcluster $version $name start failed (see /var/log/postgresql/)"
fi

for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p "$port" || fail "PostgreSQL $version/$name not answering on 127.0.0.1:$port"

psql_admin() {
  as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres "$@"
}

psql_admin -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN PASSWORD '$ROLE' CREATEDB;
  END IF;
END \$\$;" >/dev/null || fail "could not create role $ROLE"
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != 1 ]; then
  psql_admin -c "CREATE DATABASE $DATABASE OWNER $ROLE" >/dev/null \
    || fail "could not create database $DATABASE"
fi

echo "postgresql+psycopg://$ROLE:$ROLE@127.0.0.1:$port/$DATABASE"
