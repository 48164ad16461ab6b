#!/bin/sh
# First start of the PostgreSQL volume: Prefect keeps its own database (POSTGRES_DB=prefect);
# Trajet's store gets a separate database and role so neither can touch the other's tables.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE trajet LOGIN PASSWORD '${TRAJET_DB_PASSWORD}';
CREATE DATABASE trajet OWNER trajet;
SQL
