-- The Identity Server tables that telemetry counts, in SQLite, for demos and tests that need no
-- server. Same tables, columns and indexes as is-schema.postgres.sql, with SQLite types:
-- uuid → TEXT, boolean → INTEGER (0/1), and timestamps as TEXT in exactly one form, RFC 3339
-- UTC with six fraction digits ('2026-03-31T12:00:00.000000Z'), so that text order is time order.

CREATE TABLE users (
  id TEXT PRIMARY KEY NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  deleted_at TEXT,
  name TEXT,
  description TEXT,
  primary_email_address TEXT NOT NULL,
  password TEXT NOT NULL DEFAULT '',
  state INTEGER NOT NULL DEFAULT 1,
  admin INTEGER NOT NULL
);
CREATE INDEX idx_users_deleted_at ON users (deleted_at);
-- As in TTS since 20220701140000_update_email_index: unique among live users, any letter case.
CREATE UNIQUE INDEX uix_users_primary_email_address ON users (lower(primary_email_address)) WHERE deleted_at IS NULL;

CREATE TABLE organizations (
  id TEXT PRIMARY KEY NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  deleted_at TEXT,
  name TEXT,
  description TEXT
);
CREATE INDEX idx_organizations_deleted_at ON organizations (deleted_at);

CREATE TABLE gateways (
  id TEXT PRIMARY KEY NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  deleted_at TEXT,
  gateway_eui TEXT,
  gateway_id TEXT NOT NULL,
  name TEXT,
  frequency_plan_id TEXT
);
CREATE INDEX idx_gateways_deleted_at ON gateways (deleted_at);
-- As in TTS since 20220913000000_update_gtw_eui_index: unique among live gateways.
CREATE UNIQUE INDEX gateway_eui_index ON gateways (gateway_eui) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX gateway_id_index ON gateways (gateway_id);

CREATE TABLE applications (
  id TEXT PRIMARY KEY NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  deleted_at TEXT,
  application_id TEXT NOT NULL,
  name TEXT
);
CREATE INDEX idx_applications_deleted_at ON applications (deleted_at);
CREATE UNIQUE INDEX application_id_index ON applications (application_id);

CREATE TABLE end_devices (
  id TEXT PRIMARY KEY NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  application_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  name TEXT,
  join_eui TEXT,
  dev_eui TEXT,
  activated_at TEXT,
  last_seen_at TEXT
);
CREATE INDEX end_device_application_index ON end_devices (application_id);
CREATE UNIQUE INDEX end_device_id_index ON end_devices (application_id, device_id);
CREATE UNIQUE INDEX end_device_eui_index ON end_devices (join_eui, dev_eui);
