-- The Identity Server tables that telemetry counts, as The Things Stack's IS has them in
-- PostgreSQL after every migration up to 20240806000000_user_rights (lorawan-stack
-- pkg/identityserver/store/migrations: the v3.20 base schema, then the later migrations).
-- Every column of these tables, with TTS's types, NOT NULLs, defaults and indexes (partial
-- unique indexes included), so that tests and benchmarks see a realistic database. Columns that
-- migrations added come last, where ALTER TABLE put them.
--
-- Users and organizations are also accounts: TTS writes an `accounts` row for each, and its
-- store reads them through the `user_accounts` and `organization_accounts` views. Telemetry
-- counts the `users` and `organizations` tables (SPEC §4); the counting tests check that the
-- reference's queries on the views give the same numbers.
--
-- Loaded by the counting tests and scripts/bench.d/10-count.sh.

CREATE TABLE accounts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
  created_at timestamp with time zone NOT NULL,
  updated_at timestamp with time zone NOT NULL,
  deleted_at timestamp with time zone,
  uid character varying(36),
  account_id uuid NOT NULL,
  account_type character varying(32) NOT NULL
);
CREATE UNIQUE INDEX account_uid_index ON accounts USING btree (uid);
CREATE INDEX idx_accounts_deleted_at ON accounts USING btree (deleted_at);
CREATE INDEX account_id_index ON accounts USING btree (account_id, account_type);

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
  created_at timestamp with time zone NOT NULL,
  updated_at timestamp with time zone NOT NULL,
  deleted_at timestamp with time zone,
  name character varying,
  description text,
  primary_email_address character varying NOT NULL,
  primary_email_address_validated_at timestamp with time zone,
  password character varying NOT NULL,
  password_updated_at timestamp with time zone NOT NULL,
  require_password_update boolean NOT NULL,
  state integer NOT NULL,
  state_description character varying,
  admin boolean NOT NULL,
  temporary_password character varying,
  temporary_password_created_at timestamp with time zone,
  temporary_password_expires_at timestamp with time zone,
  profile_picture_id uuid,
  -- 20240103000001_console_preferences
  console_preferences bytea,
  -- 20240806000000_user_rights
  universal_rights integer[]
);
CREATE INDEX idx_users_deleted_at ON users USING btree (deleted_at);
-- 20220701140000_update_email_index: unique among live users, case-insensitively.
CREATE UNIQUE INDEX uix_users_primary_email_address ON users USING btree ((lower(primary_email_address))) WHERE deleted_at IS NULL;
CREATE INDEX user_profile_picture_index ON users USING btree (profile_picture_id);

CREATE TABLE organizations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
  created_at timestamp with time zone NOT NULL,
  updated_at timestamp with time zone NOT NULL,
  deleted_at timestamp with time zone,
  name character varying,
  description text,
  administrative_contact_id uuid,
  technical_contact_id uuid,
  -- 20231211000000_organization_notification_fanout
  fanout_notifications boolean
);
CREATE INDEX idx_organizations_deleted_at ON organizations USING btree (deleted_at);
CREATE INDEX idx_organizations_administrative_contact_id ON organizations USING btree (administrative_contact_id);
CREATE INDEX idx_organizations_technical_contact_id ON organizations USING btree (technical_contact_id);

-- 20220726092000_account_views, as last replaced by 20240806000000_user_rights and
-- 20231211000000_organization_notification_fanout (so that `*` takes in the added columns).
CREATE VIEW user_accounts AS
SELECT
  acc.id AS account_id,
  acc.created_at AS account_created_at,
  acc.updated_at AS account_updated_at,
  acc.deleted_at AS account_deleted_at,
  acc.uid AS account_uid,
  usr.*
FROM
  accounts acc
  JOIN users usr ON usr.id = acc.account_id
  AND acc.account_type = 'user';

CREATE VIEW organization_accounts AS
SELECT
  acc.id AS account_id,
  acc.created_at AS account_created_at,
  acc.updated_at AS account_updated_at,
  acc.deleted_at AS account_deleted_at,
  acc.uid AS account_uid,
  org.*
FROM
  accounts acc
  JOIN organizations org ON org.id = acc.account_id
  AND acc.account_type = 'organization';

CREATE TABLE gateways (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
  created_at timestamp with time zone NOT NULL,
  updated_at timestamp with time zone NOT NULL,
  deleted_at timestamp with time zone,
  gateway_eui character varying(16),
  gateway_id character varying(36) NOT NULL,
  name character varying,
  description text,
  administrative_contact_id uuid,
  technical_contact_id uuid,
  brand_id character varying,
  model_id character varying,
  hardware_version character varying,
  firmware_version character varying,
  gateway_server_address character varying,
  auto_update boolean NOT NULL,
  update_channel character varying,
  -- One or more plan ids separated by spaces, or NULL.
  frequency_plan_id character varying,
  status_public boolean NOT NULL,
  location_public boolean NOT NULL,
  schedule_downlink_late boolean NOT NULL,
  enforce_duty_cycle boolean NOT NULL,
  schedule_anytime_delay bigint DEFAULT 0 NOT NULL,
  downlink_path_constraint integer,
  update_location_from_status boolean DEFAULT false NOT NULL,
  lbs_lns_secret bytea,
  claim_authentication_code_secret bytea,
  claim_authentication_code_valid_from timestamp with time zone,
  claim_authentication_code_valid_to timestamp with time zone,
  target_cups_uri character varying,
  target_cups_key bytea,
  require_authenticated_connection boolean,
  supports_lrfhss boolean DEFAULT false NOT NULL,
  disable_packet_broker_forwarding boolean DEFAULT false NOT NULL
);
CREATE INDEX idx_gateways_deleted_at ON gateways USING btree (deleted_at);
-- 20220913000000_update_gtw_eui_index: an EUI is unique among live gateways only.
CREATE UNIQUE INDEX gateway_eui_index ON gateways USING btree (gateway_eui) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX gateway_id_index ON gateways USING btree (gateway_id);
CREATE INDEX idx_gateways_administrative_contact_id ON gateways USING btree (administrative_contact_id);
CREATE INDEX idx_gateways_technical_contact_id ON gateways USING btree (technical_contact_id);

CREATE TABLE applications (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
  created_at timestamp with time zone NOT NULL,
  updated_at timestamp with time zone NOT NULL,
  deleted_at timestamp with time zone,
  application_id character varying(36) NOT NULL,
  name character varying,
  description text,
  administrative_contact_id uuid,
  technical_contact_id uuid,
  network_server_address character varying,
  application_server_address character varying,
  join_server_address character varying,
  dev_eui_counter integer DEFAULT 0
);
CREATE INDEX idx_applications_deleted_at ON applications USING btree (deleted_at);
CREATE UNIQUE INDEX application_id_index ON applications USING btree (application_id);
CREATE INDEX idx_applications_administrative_contact_id ON applications USING btree (administrative_contact_id);
CREATE INDEX idx_applications_technical_contact_id ON applications USING btree (technical_contact_id);

-- End devices have no soft delete: a deleted device's row is gone.
CREATE TABLE end_devices (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
  created_at timestamp with time zone NOT NULL,
  updated_at timestamp with time zone NOT NULL,
  application_id character varying(36) NOT NULL,
  device_id character varying(36) NOT NULL,
  name character varying,
  description text,
  join_eui character varying(16),
  dev_eui character varying(16),
  brand_id character varying,
  model_id character varying,
  hardware_version character varying,
  firmware_version character varying,
  band_id character varying,
  network_server_address character varying,
  application_server_address character varying,
  join_server_address character varying,
  service_profile_id character varying,
  picture_id uuid,
  activated_at timestamp with time zone,
  last_seen_at timestamp with time zone,
  -- 20220802000000_enddevice-cac
  claim_authentication_code_secret bytea,
  claim_authentication_code_valid_from timestamp with time zone,
  claim_authentication_code_valid_to timestamp with time zone,
  -- 20221207000000_serial_number_field
  serial_number character varying(16),
  -- 20221208000000_lora_alliance_profile_ids
  vendor_id integer,
  vendor_profile_id integer
);
CREATE INDEX end_device_application_index ON end_devices USING btree (application_id);
CREATE UNIQUE INDEX end_device_id_index ON end_devices USING btree (application_id, device_id);
CREATE INDEX end_device_join_eui_index ON end_devices USING btree (join_eui);
CREATE INDEX end_device_dev_eui_index ON end_devices USING btree (dev_eui);
CREATE UNIQUE INDEX end_device_eui_index ON end_devices USING btree (join_eui, dev_eui);
CREATE INDEX end_device_picture_index ON end_devices USING btree (picture_id);
