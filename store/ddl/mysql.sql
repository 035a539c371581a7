-- secretmagic analytical store: the mysql DDL.
-- GENERATED from store/schema.py by `python -m store.dialect`: do not edit
-- (tests/integration/store/test_dsn_ddl.py fails while this file and the specs
-- disagree).
--
-- MySQL protocol, MariaDB/MySQL (verified on MariaDB 10.11): mysql:// DSNs (the tests' MariaDB).
-- The database itself is not created here. Ids compare byte-wise (utf8mb4_nopad_bin: 'A' <> 'a',
-- 'x' <> 'x '); on MySQL 8 use utf8mb4_0900_bin instead. VARCHAR(191) keeps the widest key
-- (4 x 191 x 4 bytes) under InnoDB's 3072-byte index limit. Timestamps are UTC. Non-key columns are
-- nullable (NaN is written as NULL). _version records the version (core.wire.position of the event)
-- of the write that put the row there; store_versions is the version fence: per (client_id,
-- table_name) the version of the last write applied, read FOR UPDATE in each replace transaction.

-- written by integrator

CREATE TABLE IF NOT EXISTS `sales` (
    `client_id`  VARCHAR(191) NOT NULL,
    `date`       DATE NOT NULL,
    `product_id` VARCHAR(191) NOT NULL,
    `qty`        DOUBLE NULL,
    `amount`     DOUBLE NULL,
    `_version`   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`client_id`, `date`, `product_id`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `stock` (
    `client_id`  VARCHAR(191) NOT NULL,
    `date`       DATE NOT NULL,
    `product_id` VARCHAR(191) NOT NULL,
    `on_hand`    DOUBLE NULL,
    `_version`   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`client_id`, `date`, `product_id`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `bom` (
    `client_id`  VARCHAR(191) NOT NULL,
    `parent_id`  VARCHAR(191) NOT NULL,
    `child_id`   VARCHAR(191) NOT NULL,
    `qty_per`    DOUBLE NULL,
    `base_qty`   DOUBLE NULL,
    `scrap_pct`  DOUBLE NULL,
    `phantom`    BOOLEAN NULL,
    `valid_from` DATE NULL,
    `valid_to`   DATE NULL,
    `uom_factor` DOUBLE NULL,
    `lead_days`  INT NULL,
    `_version`   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`client_id`, `parent_id`, `child_id`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `products` (
    `client_id`  VARCHAR(191) NOT NULL,
    `product_id` VARCHAR(191) NOT NULL,
    `name`       VARCHAR(1024) NULL,
    `category`   VARCHAR(1024) NULL,
    `active`     BOOLEAN NULL,
    `_version`   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`client_id`, `product_id`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

-- written by secretmagic

CREATE TABLE IF NOT EXISTS `bom_exploded` (
    `client_id`    VARCHAR(191) NOT NULL,
    `product_id`   VARCHAR(191) NOT NULL,
    `component_id` VARCHAR(191) NOT NULL,
    `quantity`     DOUBLE NULL,
    `depth`        INT NULL,
    `computed_at`  DATETIME(6) NOT NULL,
    `_version`     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`client_id`, `product_id`, `component_id`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `product_meta` (
    `client_id`    VARCHAR(191) NOT NULL,
    `product_id`   VARCHAR(191) NOT NULL,
    `category`     VARCHAR(1024) NULL,
    `active`       BOOLEAN NULL,
    `refreshed_at` DATETIME(6) NOT NULL,
    `_version`     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`client_id`, `product_id`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `daily_features` (
    `client_id`   VARCHAR(191) NOT NULL,
    `date`        DATE NOT NULL,
    `product_id`  VARCHAR(191) NOT NULL,
    `computed_at` DATETIME(6) NOT NULL,
    `_version`    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`client_id`, `date`, `product_id`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `feature_profiles` (
    `client_id`   VARCHAR(191) NOT NULL,
    `product_id`  VARCHAR(191) NOT NULL,
    `kind`        VARCHAR(191) NOT NULL,
    `period`      INT NOT NULL,
    `value`       DOUBLE NULL,
    `qty_sum`     VARCHAR(1024) NULL,
    `days`        BIGINT NULL,
    `computed_at` DATETIME(6) NOT NULL,
    `_version`    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`client_id`, `product_id`, `kind`, `period`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `bom_exploded_dated` (
    `client_id`    VARCHAR(191) NOT NULL,
    `product_id`   VARCHAR(191) NOT NULL,
    `component_id` VARCHAR(191) NOT NULL,
    `lead_days`    INT NOT NULL,
    `range_no`     INT NOT NULL,
    `valid_from`   DATE NULL,
    `valid_to`     DATE NULL,
    `quantity`     DOUBLE NULL,
    `depth`        INT NULL,
    `leaf`         BOOLEAN NULL,
    `computed_at`  DATETIME(6) NOT NULL,
    `_version`     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`client_id`, `product_id`, `component_id`, `lead_days`, `range_no`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `component_demand` (
    `client_id`    VARCHAR(191) NOT NULL,
    `date`         DATE NOT NULL,
    `component_id` VARCHAR(191) NOT NULL,
    `demand`       DOUBLE NULL,
    `computed_at`  DATETIME(6) NOT NULL,
    `_version`     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`client_id`, `date`, `component_id`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `component_features` (
    `client_id`    VARCHAR(191) NOT NULL,
    `date`         DATE NOT NULL,
    `component_id` VARCHAR(191) NOT NULL,
    `computed_at`  DATETIME(6) NOT NULL,
    `_version`     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`client_id`, `date`, `component_id`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `component_profiles` (
    `client_id`    VARCHAR(191) NOT NULL,
    `component_id` VARCHAR(191) NOT NULL,
    `kind`         VARCHAR(191) NOT NULL,
    `period`       INT NOT NULL,
    `value`        DOUBLE NULL,
    `computed_at`  DATETIME(6) NOT NULL,
    `_version`     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`client_id`, `component_id`, `kind`, `period`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `input_digests` (
    `client_id`   VARCHAR(191) NOT NULL,
    `date`        DATE NOT NULL,
    `source`      VARCHAR(191) NOT NULL,
    `product_id`  VARCHAR(191) NOT NULL,
    `rows`        BIGINT NULL,
    `checksum`    BIGINT NULL,
    `computed_at` DATETIME(6) NOT NULL,
    `_version`    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`client_id`, `date`, `source`, `product_id`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS `store_versions` (
    `client_id`  VARCHAR(191) NOT NULL,
    `table_name` VARCHAR(191) NOT NULL,
    `applied_at` DATETIME(6) NOT NULL,
    `_version`   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (`client_id`, `table_name`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
