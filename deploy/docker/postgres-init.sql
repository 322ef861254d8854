-- PostgreSQL init for docker-compose.yml: one database per component, each with pg_trgm.
-- The postgres image runs this once, as POSTGRES_USER (the owner of every database below),
-- when its data volume is empty. A database added later must be created by hand (same lines).
-- Keep the list in step with the components in docker-compose.yml.

\set ON_ERROR_STOP on

CREATE DATABASE registry;
\connect registry
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE DATABASE disbursement;
\connect disbursement
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE DATABASE shelter;
\connect shelter
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE DATABASE homeless_return;
\connect homeless_return
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE DATABASE disaster;
\connect disaster
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE DATABASE gateway;
\connect gateway
CREATE EXTENSION IF NOT EXISTS pg_trgm;
