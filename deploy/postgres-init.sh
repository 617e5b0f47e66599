#!/bin/sh
# The platform's own database and roles beside Temporal's (first start of the volume only).
# Least privilege:
#   crowdlending_owner  LOGIN: owns the database (and, through the migrations, every table);
#                       the `migrate` job's MIGRATION_DATABASE_URL. Nothing else logs in as it.
#   crowdlending_app    NOLOGIN group: holds exactly what the app needs, granted by the Alembic
#                       migrations (run as the owner); no DDL, no trigger changes.
#   crowdlending        LOGIN, member of crowdlending_app, owns nothing: the API's and the
#                       worker's DATABASE_URL.
# Passwords reach SQL as psql variables (:'name' quotes them), never pasted into the text.
# pg_hba.conf asks every connection for a SCRAM password (POSTGRES_HOST_AUTH_METHOD and
# POSTGRES_INITDB_ARGS in docker-compose.yml).
set -eu
: "${OWNER_DB_PASSWORD:?set OWNER_DB_PASSWORD}"
: "${APP_DB_PASSWORD:?set APP_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
  -v owner_password="$OWNER_DB_PASSWORD" -v app_password="$APP_DB_PASSWORD" <<'SQL'
CREATE ROLE crowdlending_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'owner_password';
CREATE ROLE crowdlending_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE ROLE crowdlending LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT
  PASSWORD :'app_password' IN ROLE crowdlending_app;
CREATE DATABASE crowdlending OWNER crowdlending_owner;
REVOKE ALL ON DATABASE crowdlending FROM PUBLIC;
GRANT CONNECT ON DATABASE crowdlending TO crowdlending_app;
\connect crowdlending
-- The schema belongs to the database's owner (pg_database_owner); the app may use it, not create in it.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO crowdlending_app;
SQL
