-- secretmagic analytical store: ClickHouse / chDB DDL (verified on chDB 4.4 = ClickHouse 26.9,
-- in-process). Loaded by store.clickhouse.ClickHouseStore.create_tables (idempotent); the tables go
-- into the DSN's database (chdb: `secretmagic` unless ?database=..., created if missing).
--
-- Every table is ReplacingMergeTree(_version) ORDER BY its key, client_id first. The store replaces
-- a client's rows by inserting them with a newer _version and then lightweight-deleting the client's
-- older versions; reads use FINAL. _version (nanoseconds) defaults to the insert time, so a plain
-- INSERT by another writer is an upsert by key. Dates are Date32 (1900..2299, no silent clamping of
-- pre-1970 dates as Date would do); non-key columns are Nullable (NaN is written as NULL).

-- integrator-owned inputs

CREATE TABLE IF NOT EXISTS `sales` (
    `client_id`  String,
    `product_id` String,
    `date`       Date32,
    `qty`        Nullable(Float64),
    `amount`     Nullable(Float64),
    `_version`   UInt64 DEFAULT toUnixTimestamp64Nano(now64(9))
) ENGINE = ReplacingMergeTree(`_version`)
ORDER BY (`client_id`, `product_id`, `date`);

CREATE TABLE IF NOT EXISTS `stock` (
    `client_id`  String,
    `product_id` String,
    `date`       Date32,
    `on_hand`    Nullable(Float64),
    `_version`   UInt64 DEFAULT toUnixTimestamp64Nano(now64(9))
) ENGINE = ReplacingMergeTree(`_version`)
ORDER BY (`client_id`, `product_id`, `date`);

CREATE TABLE IF NOT EXISTS `bom` (
    `client_id`  String,
    `parent_id`  String,
    `child_id`   String,
    `qty_per`    Nullable(Float64),
    `_version`   UInt64 DEFAULT toUnixTimestamp64Nano(now64(9))
) ENGINE = ReplacingMergeTree(`_version`)
ORDER BY (`client_id`, `parent_id`, `child_id`);

CREATE TABLE IF NOT EXISTS `products` (
    `client_id`  String,
    `product_id` String,
    `name`       Nullable(String),
    `category`   Nullable(String),
    `active`     Nullable(Bool),
    `_version`   UInt64 DEFAULT toUnixTimestamp64Nano(now64(9))
) ENGINE = ReplacingMergeTree(`_version`)
ORDER BY (`client_id`, `product_id`);

-- secretmagic-owned outputs

CREATE TABLE IF NOT EXISTS `features` (
    `client_id`   String,
    `product_id`  String,
    `date`        Date32,
    `feature`     LowCardinality(String),
    `value`       Nullable(Float64),
    `computed_at` DateTime64(6, 'UTC') DEFAULT now64(6),
    `_version`    UInt64 DEFAULT toUnixTimestamp64Nano(now64(9))
) ENGINE = ReplacingMergeTree(`_version`)
ORDER BY (`client_id`, `product_id`, `date`, `feature`);

CREATE TABLE IF NOT EXISTS `bom_exploded` (
    `client_id`    String,
    `product_id`   String,
    `component_id` String,
    `quantity`     Nullable(Float64),
    `depth`        Nullable(Int32),
    `computed_at`  DateTime64(6, 'UTC') DEFAULT now64(6),
    `_version`     UInt64 DEFAULT toUnixTimestamp64Nano(now64(9))
) ENGINE = ReplacingMergeTree(`_version`)
ORDER BY (`client_id`, `product_id`, `component_id`);

CREATE TABLE IF NOT EXISTS `product_meta` (
    `client_id`    String,
    `product_id`   String,
    `category`     Nullable(String),
    `active`       Nullable(Bool),
    `refreshed_at` DateTime64(6, 'UTC') DEFAULT now64(6),
    `_version`     UInt64 DEFAULT toUnixTimestamp64Nano(now64(9))
) ENGINE = ReplacingMergeTree(`_version`)
ORDER BY (`client_id`, `product_id`);
