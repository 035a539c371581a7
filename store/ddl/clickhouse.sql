-- secretmagic analytical store: the clickhouse DDL.
-- GENERATED from store/schema.py by `python -m store.dialect`: do not edit
-- (tests/integration/store/test_dsn_ddl.py fails while this file and the specs
-- disagree).
--
-- ClickHouse / chDB (verified on chDB 4.4 = ClickHouse 26.9, in-process). The tables go into the DSN's
-- database (chdb: `secretmagic` unless ?database=..., created if missing).
--
-- Every table is ReplacingMergeTree(_version, _deleted) ORDER BY its key, client_id first; reads use
-- FINAL, which keeps the row with the highest _version per key and hides keys whose latest row has
-- _deleted = 1. The store replaces a client's rows with ONE insert: the new rows plus a tombstone
-- (_deleted = 1) for each of the client's keys the new frame no longer has. No mutation
-- (ALTER/lightweight DELETE) is involved: those wait for the background merge executor (0.2-1 s
-- each, measured on chDB 26.9). _version is the version of the write (core.wire.position of the
-- event it serves); it defaults to the insert time on the same scale (ms << 20), so a plain INSERT by
-- another writer (an integrator) is an upsert by key; inserting a row with _deleted = 1 deletes its
-- key. store_versions is the version fence: per (client_id, table_name) the highest version written.
-- Dates are Date32 (1900..2299: no silent clamping of pre-1970 dates as Date would do); non-key
-- columns are Nullable (NaN is written as NULL).

-- written by integrator

CREATE TABLE IF NOT EXISTS `sales` (
    `client_id`  String,
    `date`       Date32,
    `product_id` String,
    `qty`        Nullable(Float64),
    `amount`     Nullable(Float64),
    `_version`   UInt64 DEFAULT bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20),
    `_deleted`   UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(`_version`, `_deleted`)
ORDER BY (`client_id`, `date`, `product_id`);

CREATE TABLE IF NOT EXISTS `stock` (
    `client_id`  String,
    `date`       Date32,
    `product_id` String,
    `on_hand`    Nullable(Float64),
    `_version`   UInt64 DEFAULT bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20),
    `_deleted`   UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(`_version`, `_deleted`)
ORDER BY (`client_id`, `date`, `product_id`);

CREATE TABLE IF NOT EXISTS `bom` (
    `client_id`  String,
    `parent_id`  String,
    `child_id`   String,
    `qty_per`    Nullable(Float64),
    `base_qty`   Nullable(Float64),
    `scrap_pct`  Nullable(Float64),
    `phantom`    Nullable(Bool),
    `valid_from` Nullable(Date32),
    `valid_to`   Nullable(Date32),
    `uom_factor` Nullable(Float64),
    `lead_days`  Nullable(Int32),
    `_version`   UInt64 DEFAULT bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20),
    `_deleted`   UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(`_version`, `_deleted`)
ORDER BY (`client_id`, `parent_id`, `child_id`);

CREATE TABLE IF NOT EXISTS `products` (
    `client_id`  String,
    `product_id` String,
    `name`       Nullable(String),
    `category`   Nullable(String),
    `active`     Nullable(Bool),
    `_version`   UInt64 DEFAULT bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20),
    `_deleted`   UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(`_version`, `_deleted`)
ORDER BY (`client_id`, `product_id`);

-- written by secretmagic

CREATE TABLE IF NOT EXISTS `bom_exploded` (
    `client_id`    String,
    `product_id`   String,
    `component_id` String,
    `quantity`     Nullable(Float64),
    `depth`        Nullable(Int32),
    `computed_at`  DateTime64(6, 'UTC') DEFAULT now64(6),
    `_version`     UInt64 DEFAULT bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20),
    `_deleted`     UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(`_version`, `_deleted`)
ORDER BY (`client_id`, `product_id`, `component_id`);

CREATE TABLE IF NOT EXISTS `product_meta` (
    `client_id`    String,
    `product_id`   String,
    `category`     Nullable(String),
    `active`       Nullable(Bool),
    `refreshed_at` DateTime64(6, 'UTC') DEFAULT now64(6),
    `_version`     UInt64 DEFAULT bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20),
    `_deleted`     UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(`_version`, `_deleted`)
ORDER BY (`client_id`, `product_id`);

CREATE TABLE IF NOT EXISTS `daily_features` (
    `client_id`   String,
    `date`        Date32,
    `product_id`  String,
    `computed_at` DateTime64(6, 'UTC') DEFAULT now64(6),
    `_version`    UInt64 DEFAULT bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20),
    `_deleted`    UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(`_version`, `_deleted`)
ORDER BY (`client_id`, `date`, `product_id`);

CREATE TABLE IF NOT EXISTS `feature_profiles` (
    `client_id`   String,
    `product_id`  String,
    `kind`        String,
    `period`      Int32,
    `value`       Nullable(Float64),
    `qty_sum`     Nullable(String),
    `days`        Nullable(Int64),
    `computed_at` DateTime64(6, 'UTC') DEFAULT now64(6),
    `_version`    UInt64 DEFAULT bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20),
    `_deleted`    UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(`_version`, `_deleted`)
ORDER BY (`client_id`, `product_id`, `kind`, `period`);

CREATE TABLE IF NOT EXISTS `bom_exploded_dated` (
    `client_id`    String,
    `product_id`   String,
    `component_id` String,
    `lead_days`    Int32,
    `range_no`     Int32,
    `valid_from`   Nullable(Date32),
    `valid_to`     Nullable(Date32),
    `quantity`     Nullable(Float64),
    `depth`        Nullable(Int32),
    `leaf`         Nullable(Bool),
    `computed_at`  DateTime64(6, 'UTC') DEFAULT now64(6),
    `_version`     UInt64 DEFAULT bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20),
    `_deleted`     UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(`_version`, `_deleted`)
ORDER BY (`client_id`, `product_id`, `component_id`, `lead_days`, `range_no`);

CREATE TABLE IF NOT EXISTS `component_demand` (
    `client_id`    String,
    `date`         Date32,
    `component_id` String,
    `demand`       Nullable(Float64),
    `computed_at`  DateTime64(6, 'UTC') DEFAULT now64(6),
    `_version`     UInt64 DEFAULT bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20),
    `_deleted`     UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(`_version`, `_deleted`)
ORDER BY (`client_id`, `date`, `component_id`);

CREATE TABLE IF NOT EXISTS `component_features` (
    `client_id`    String,
    `date`         Date32,
    `component_id` String,
    `computed_at`  DateTime64(6, 'UTC') DEFAULT now64(6),
    `_version`     UInt64 DEFAULT bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20),
    `_deleted`     UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(`_version`, `_deleted`)
ORDER BY (`client_id`, `date`, `component_id`);

CREATE TABLE IF NOT EXISTS `component_profiles` (
    `client_id`    String,
    `component_id` String,
    `kind`         String,
    `period`       Int32,
    `value`        Nullable(Float64),
    `computed_at`  DateTime64(6, 'UTC') DEFAULT now64(6),
    `_version`     UInt64 DEFAULT bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20),
    `_deleted`     UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(`_version`, `_deleted`)
ORDER BY (`client_id`, `component_id`, `kind`, `period`);

CREATE TABLE IF NOT EXISTS `input_digests` (
    `client_id`   String,
    `date`        Date32,
    `source`      String,
    `product_id`  String,
    `rows`        Nullable(Int64),
    `checksum`    Nullable(Int64),
    `computed_at` DateTime64(6, 'UTC') DEFAULT now64(6),
    `_version`    UInt64 DEFAULT bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20),
    `_deleted`    UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(`_version`, `_deleted`)
ORDER BY (`client_id`, `date`, `source`, `product_id`);

CREATE TABLE IF NOT EXISTS `store_versions` (
    `client_id`  String,
    `table_name` String,
    `applied_at` DateTime64(6, 'UTC') DEFAULT now64(6),
    `_version`   UInt64 DEFAULT bitShiftLeft(toUInt64(toUnixTimestamp64Milli(now64(3))), 20),
    `_deleted`   UInt8 DEFAULT 0
) ENGINE = ReplacingMergeTree(`_version`, `_deleted`)
ORDER BY (`client_id`, `table_name`);
