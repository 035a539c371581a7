-- secretmagic analytical store: the starrocks DDL.
-- GENERATED from store/schema.py by `python -m store.dialect`: do not edit
-- (tests/integration/store/test_dsn_ddl.py fails while this file and the specs
-- disagree).
--
-- StarRocks, the production target (over the MySQL protocol): starrocks:// DSNs; create the
-- database first. NOT VERIFIED HERE: no StarRocks server is available on the development machine;
-- written for StarRocks >= 3.0 from its documented syntax, with the same tables, columns and keys as
-- mysql.sql (verified on MariaDB 10.11) and clickhouse.sql (verified on chDB/ClickHouse 26.9).
--
-- PRIMARY KEY tables: a load of an existing key replaces the row (upsert); DELETE ... WHERE
-- client_id = ? is supported. Key columns come first, in key order, NOT NULL. DISTRIBUTED BY
-- HASH(client_id) keeps a client's rows in one bucket set, which makes the per-client delete and read
-- cheap (a very large client skews its buckets; hash by (client_id, product_id) instead if that
-- matters). VARCHAR lengths are in bytes, and the encoded primary key is limited to 128 bytes by
-- default (BE config primary_key_limit_size): keep ids short. replication_num defaults to 3; a
-- single-BE dev cluster needs PROPERTIES ("replication_num" = "1"). _version is the version of the
-- write (core.wire.position of the event): loads use it as their merge_condition, so an older row
-- never overwrites a newer one; store_versions is the version fence per (client_id, table_name).

-- written by integrator

CREATE TABLE IF NOT EXISTS `sales` (
    `client_id`  VARCHAR(255) NOT NULL,
    `date`       DATE NOT NULL,
    `product_id` VARCHAR(255) NOT NULL,
    `qty`        DOUBLE NULL,
    `amount`     DOUBLE NULL,
    `_version`   BIGINT NOT NULL DEFAULT "0"
) PRIMARY KEY (`client_id`, `date`, `product_id`)
DISTRIBUTED BY HASH (`client_id`);

CREATE TABLE IF NOT EXISTS `stock` (
    `client_id`  VARCHAR(255) NOT NULL,
    `date`       DATE NOT NULL,
    `product_id` VARCHAR(255) NOT NULL,
    `on_hand`    DOUBLE NULL,
    `_version`   BIGINT NOT NULL DEFAULT "0"
) PRIMARY KEY (`client_id`, `date`, `product_id`)
DISTRIBUTED BY HASH (`client_id`);

CREATE TABLE IF NOT EXISTS `bom` (
    `client_id`  VARCHAR(255) NOT NULL,
    `parent_id`  VARCHAR(255) NOT NULL,
    `child_id`   VARCHAR(255) NOT NULL,
    `qty_per`    DOUBLE NULL,
    `base_qty`   DOUBLE NULL,
    `scrap_pct`  DOUBLE NULL,
    `phantom`    BOOLEAN NULL,
    `valid_from` DATE NULL,
    `valid_to`   DATE NULL,
    `uom_factor` DOUBLE NULL,
    `lead_days`  INT NULL,
    `_version`   BIGINT NOT NULL DEFAULT "0"
) PRIMARY KEY (`client_id`, `parent_id`, `child_id`)
DISTRIBUTED BY HASH (`client_id`);

CREATE TABLE IF NOT EXISTS `products` (
    `client_id`  VARCHAR(255) NOT NULL,
    `product_id` VARCHAR(255) NOT NULL,
    `name`       VARCHAR(1024) NULL,
    `category`   VARCHAR(1024) NULL,
    `active`     BOOLEAN NULL,
    `_version`   BIGINT NOT NULL DEFAULT "0"
) PRIMARY KEY (`client_id`, `product_id`)
DISTRIBUTED BY HASH (`client_id`);

-- written by secretmagic

CREATE TABLE IF NOT EXISTS `bom_exploded` (
    `client_id`    VARCHAR(255) NOT NULL,
    `product_id`   VARCHAR(255) NOT NULL,
    `component_id` VARCHAR(255) NOT NULL,
    `quantity`     DOUBLE NULL,
    `depth`        INT NULL,
    `computed_at`  DATETIME NOT NULL,
    `_version`     BIGINT NOT NULL DEFAULT "0"
) PRIMARY KEY (`client_id`, `product_id`, `component_id`)
DISTRIBUTED BY HASH (`client_id`);

CREATE TABLE IF NOT EXISTS `product_meta` (
    `client_id`    VARCHAR(255) NOT NULL,
    `product_id`   VARCHAR(255) NOT NULL,
    `category`     VARCHAR(1024) NULL,
    `active`       BOOLEAN NULL,
    `refreshed_at` DATETIME NOT NULL,
    `_version`     BIGINT NOT NULL DEFAULT "0"
) PRIMARY KEY (`client_id`, `product_id`)
DISTRIBUTED BY HASH (`client_id`);

CREATE TABLE IF NOT EXISTS `daily_features` (
    `client_id`   VARCHAR(255) NOT NULL,
    `date`        DATE NOT NULL,
    `product_id`  VARCHAR(255) NOT NULL,
    `computed_at` DATETIME NOT NULL,
    `_version`    BIGINT NOT NULL DEFAULT "0"
) PRIMARY KEY (`client_id`, `date`, `product_id`)
DISTRIBUTED BY HASH (`client_id`);

CREATE TABLE IF NOT EXISTS `feature_profiles` (
    `client_id`   VARCHAR(255) NOT NULL,
    `product_id`  VARCHAR(255) NOT NULL,
    `kind`        VARCHAR(255) NOT NULL,
    `period`      INT NOT NULL,
    `value`       DOUBLE NULL,
    `qty_sum`     VARCHAR(1024) NULL,
    `days`        BIGINT NULL,
    `computed_at` DATETIME NOT NULL,
    `_version`    BIGINT NOT NULL DEFAULT "0"
) PRIMARY KEY (`client_id`, `product_id`, `kind`, `period`)
DISTRIBUTED BY HASH (`client_id`);

CREATE TABLE IF NOT EXISTS `bom_exploded_dated` (
    `client_id`    VARCHAR(255) NOT NULL,
    `product_id`   VARCHAR(255) NOT NULL,
    `component_id` VARCHAR(255) NOT NULL,
    `lead_days`    INT NOT NULL,
    `range_no`     INT NOT NULL,
    `valid_from`   DATE NULL,
    `valid_to`     DATE NULL,
    `quantity`     DOUBLE NULL,
    `depth`        INT NULL,
    `leaf`         BOOLEAN NULL,
    `computed_at`  DATETIME NOT NULL,
    `_version`     BIGINT NOT NULL DEFAULT "0"
) PRIMARY KEY (`client_id`, `product_id`, `component_id`, `lead_days`, `range_no`)
DISTRIBUTED BY HASH (`client_id`);

CREATE TABLE IF NOT EXISTS `component_demand` (
    `client_id`    VARCHAR(255) NOT NULL,
    `date`         DATE NOT NULL,
    `component_id` VARCHAR(255) NOT NULL,
    `demand`       DOUBLE NULL,
    `computed_at`  DATETIME NOT NULL,
    `_version`     BIGINT NOT NULL DEFAULT "0"
) PRIMARY KEY (`client_id`, `date`, `component_id`)
DISTRIBUTED BY HASH (`client_id`);

CREATE TABLE IF NOT EXISTS `component_features` (
    `client_id`    VARCHAR(255) NOT NULL,
    `date`         DATE NOT NULL,
    `component_id` VARCHAR(255) NOT NULL,
    `computed_at`  DATETIME NOT NULL,
    `_version`     BIGINT NOT NULL DEFAULT "0"
) PRIMARY KEY (`client_id`, `date`, `component_id`)
DISTRIBUTED BY HASH (`client_id`);

CREATE TABLE IF NOT EXISTS `component_profiles` (
    `client_id`    VARCHAR(255) NOT NULL,
    `component_id` VARCHAR(255) NOT NULL,
    `kind`         VARCHAR(255) NOT NULL,
    `period`       INT NOT NULL,
    `value`        DOUBLE NULL,
    `computed_at`  DATETIME NOT NULL,
    `_version`     BIGINT NOT NULL DEFAULT "0"
) PRIMARY KEY (`client_id`, `component_id`, `kind`, `period`)
DISTRIBUTED BY HASH (`client_id`);

CREATE TABLE IF NOT EXISTS `input_digests` (
    `client_id`   VARCHAR(255) NOT NULL,
    `date`        DATE NOT NULL,
    `source`      VARCHAR(255) NOT NULL,
    `product_id`  VARCHAR(255) NOT NULL,
    `rows`        BIGINT NULL,
    `checksum`    BIGINT NULL,
    `computed_at` DATETIME NOT NULL,
    `_version`    BIGINT NOT NULL DEFAULT "0"
) PRIMARY KEY (`client_id`, `date`, `source`, `product_id`)
DISTRIBUTED BY HASH (`client_id`);

CREATE TABLE IF NOT EXISTS `store_versions` (
    `client_id`  VARCHAR(255) NOT NULL,
    `table_name` VARCHAR(255) NOT NULL,
    `applied_at` DATETIME NOT NULL,
    `_version`   BIGINT NOT NULL DEFAULT "0"
) PRIMARY KEY (`client_id`, `table_name`)
DISTRIBUTED BY HASH (`client_id`);
