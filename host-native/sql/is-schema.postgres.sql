-- The Identity Server tables that telemetry counts, as The Things Stack's IS creates them in
-- PostgreSQL: the columns telemetry reads, the ones around them that real rows carry, and the
-- indexes TTS has on these tables (so that benchmarks and tests see a realistic database).
-- Loaded by the counting tests and scripts/bench.d/10-count.sh.

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz,
  name varchar,
  description text,
  primary_email_address varchar NOT NULL,
  primary_email_address_validated_at timestamptz,
  password varchar NOT NULL DEFAULT '',
  password_updated_at timestamptz NOT NULL DEFAULT now(),
  require_password_update boolean NOT NULL DEFAULT false,
  state integer NOT NULL DEFAULT 1,
  state_description varchar,
  admin boolean NOT NULL,
  temporary_password varchar,
  temporary_password_created_at timestamptz,
  temporary_password_expires_at timestamptz,
  profile_picture_id uuid
);
CREATE INDEX idx_users_deleted_at ON users (deleted_at);
CREATE UNIQUE INDEX uix_users_primary_email_address ON users (primary_email_address);
CREATE INDEX user_profile_picture_index ON users (profile_picture_id);

CREATE TABLE organizations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz,
  name varchar,
  description text,
  administrative_contact_id uuid,
  technical_contact_id uuid
);
CREATE INDEX idx_organizations_deleted_at ON organizations (deleted_at);
CREATE INDEX idx_organizations_administrative_contact_id ON organizations (administrative_contact_id);
CREATE INDEX idx_organizations_technical_contact_id ON organizations (technical_contact_id);

CREATE TABLE gateways (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz,
  gateway_eui varchar(16),
  gateway_id varchar(36) NOT NULL,
  name varchar,
  description text,
  administrative_contact_id uuid,
  technical_contact_id uuid,
  brand_id varchar,
  model_id varchar,
  hardware_version varchar,
  firmware_version varchar,
  gateway_server_address varchar,
  auto_update boolean NOT NULL DEFAULT false,
  update_channel varchar,
  -- One or more plan ids separated by spaces, or NULL.
  frequency_plan_id varchar,
  status_public boolean NOT NULL DEFAULT false,
  location_public boolean NOT NULL DEFAULT false,
  schedule_downlink_late boolean NOT NULL DEFAULT false,
  enforce_duty_cycle boolean NOT NULL DEFAULT true,
  schedule_anytime_delay bigint NOT NULL DEFAULT 0,
  downlink_path_constraint integer,
  update_location_from_status boolean NOT NULL DEFAULT false,
  require_authenticated_connection boolean,
  supports_lrfhss boolean NOT NULL DEFAULT false,
  disable_packet_broker_forwarding boolean NOT NULL DEFAULT false
);
CREATE INDEX idx_gateways_deleted_at ON gateways (deleted_at);
CREATE UNIQUE INDEX gateway_eui_index ON gateways (gateway_eui);
CREATE UNIQUE INDEX gateway_id_index ON gateways (gateway_id);
CREATE INDEX idx_gateways_administrative_contact_id ON gateways (administrative_contact_id);
CREATE INDEX idx_gateways_technical_contact_id ON gateways (technical_contact_id);

CREATE TABLE applications (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz,
  application_id varchar(36) NOT NULL,
  name varchar,
  description text,
  administrative_contact_id uuid,
  technical_contact_id uuid,
  network_server_address varchar,
  application_server_address varchar,
  join_server_address varchar,
  dev_eui_counter integer DEFAULT 0
);
CREATE INDEX idx_applications_deleted_at ON applications (deleted_at);
CREATE UNIQUE INDEX application_id_index ON applications (application_id);
CREATE INDEX idx_applications_administrative_contact_id ON applications (administrative_contact_id);
CREATE INDEX idx_applications_technical_contact_id ON applications (technical_contact_id);

-- End devices have no soft delete: a deleted device's row is gone.
CREATE TABLE end_devices (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  application_id varchar(36) NOT NULL,
  device_id varchar(36) NOT NULL,
  name varchar,
  description text,
  join_eui varchar(16),
  dev_eui varchar(16),
  brand_id varchar,
  model_id varchar,
  hardware_version varchar,
  firmware_version varchar,
  band_id varchar,
  network_server_address varchar,
  application_server_address varchar,
  join_server_address varchar,
  service_profile_id varchar,
  picture_id uuid,
  activated_at timestamptz,
  last_seen_at timestamptz
);
CREATE INDEX end_device_application_index ON end_devices (application_id);
CREATE UNIQUE INDEX end_device_id_index ON end_devices (application_id, device_id);
CREATE INDEX end_device_join_eui_index ON end_devices (join_eui);
CREATE INDEX end_device_dev_eui_index ON end_devices (dev_eui);
CREATE UNIQUE INDEX end_device_eui_index ON end_devices (join_eui, dev_eui);
CREATE INDEX end_device_picture_index ON end_devices (picture_id);
