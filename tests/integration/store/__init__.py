"""The store against its backends: chDB (embedded ClickHouse), MariaDB, the StarRocks protocol
simulation."""
