#!/bin/sh
# The platform's own database and role beside Temporal's (first start of the volume only).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE ROLE crowdlending LOGIN PASSWORD '${APP_DB_PASSWORD}';
CREATE DATABASE crowdlending OWNER crowdlending;
SQL
