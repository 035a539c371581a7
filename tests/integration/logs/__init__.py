"""Dual logging: console lines and the PostgreSQL log table (the seed's «Логи в PostgreSQL»).

Real PostgreSQL: the session's `pg_dsn` for the table and the seed's queries, a private server
(tests/services.PrivatePostgres) where PostgreSQL has to go away and come back.
"""
