"""The replace on MariaDB/MySQL (InnoDB): the version fence and the client's rows in ONE
transaction.

    BEGIN
    INSERT INTO store_versions ... ON DUPLICATE KEY UPDATE ...  -- the fence row exists (locked)
    SELECT _version FROM store_versions ... FOR UPDATE          -- older write: ROLLBACK, Superseded
    DELETE FROM <table> WHERE client_id = ? [AND date >= since]
    LOAD DATA LOCAL INFILE ... | INSERT ... VALUES batches
    UPDATE store_versions SET _version = <this write's version>
    COMMIT

The fence row lock serialises the replaces of one client's table (on every instance): a write
either sees the newer version and changes nothing, or runs alone. Readers see the old rows or the
new ones. A deadlock or a duplicate key (a concurrent writer of the same rows through another
path) is retried a few times: the transaction is idempotent.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import time
from collections.abc import Callable

from core import logs
from store.base import Write
from store.mysql.pool import RACE_ERRNOS, Connection, Cursor, errno
from store.schema import FENCE, VERSION

log = logs.get("store")
_RACE_ATTEMPTS = 4


def where(client_id: str, since: dt.date | None) -> tuple[str, tuple[object, ...]]:
    """The WHERE clause of a client's rows (from `since` on) and its parameters."""
    if since is None:
        return "`client_id` = %s", (client_id,)
    return "`client_id` = %s AND `date` >= %s", (client_id, since)


def applied(cur: Cursor, write: Write, lock: bool = False) -> int | None:
    """The version the fence holds for the write's client and table (None: never written)."""
    cur.execute(f"SELECT `{VERSION}` FROM `{FENCE.name}` WHERE `client_id` = %s "
                f"AND `table_name` = %s" + (" FOR UPDATE" if lock else ""),
                (write.client_id, write.spec.name))
    row = cur.fetchone()
    return None if row is None else int(row[0])


def replace(conn: Connection, write: Write, write_rows: Callable[[Cursor], None]) -> None:
    """Run the transaction above; `write_rows(cur)` writes the new rows (LOAD DATA or INSERTs)."""
    stamp = write.stamp.replace(tzinfo=None)
    key = (write.client_id, write.spec.name)
    for attempt in range(1, _RACE_ATTEMPTS + 1):
        try:
            with conn.cursor() as cur:
                conn.begin()
                cur.execute(
                    f"INSERT INTO `{FENCE.name}` (`client_id`, `table_name`, `{FENCE.stamp}`, "
                    f"`{VERSION}`) VALUES (%s, %s, %s, 0) "
                    f"ON DUPLICATE KEY UPDATE `{VERSION}` = `{VERSION}`", (*key, stamp))
                write.admit(applied(cur, write, lock=True))
                condition, params = where(write.client_id, write.since)
                cur.execute(f"DELETE FROM `{write.spec.name}` WHERE {condition}", params)
                write_rows(cur)
                cur.execute(f"UPDATE `{FENCE.name}` SET `{VERSION}` = %s, `{FENCE.stamp}` = %s "
                            "WHERE `client_id` = %s AND `table_name` = %s",
                            (write.version, stamp, *key))
                conn.commit()
            return
        except Exception as exc:
            with contextlib.suppress(Exception):  # a broken connection is dropped anyway
                conn.rollback()
            if errno(exc) not in RACE_ERRNOS or attempt == _RACE_ATTEMPTS:
                raise
            log.info("store: %s lost a race (%s); again", write.what, exc)
            time.sleep(0.02 * attempt * (1 + random.random()))
