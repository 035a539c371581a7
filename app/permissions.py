"""What the worker may need to do in Redis, as the least-privilege ACL users of docs/redis-acl.md,
and a check at start that the user it connects as has each of those permissions.

The check sends each command the worker uses once, in a form that changes nothing the worker
would not do anyway (creating its group as it would, acking entry 0-0, adding at id 0-0, which
Redis refuses after the ACL check, reading its own pending entries after the last possible id
…): Redis refuses a command the user may not run, or a key it may not touch, with NOPERM before
anything else, so a
missing permission is found at start and named in one line — not as a retry loop at the first
event that needs it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from redis import exceptions as rx

from core import keys

# Every command the worker sends, by what it is for (`a|b` is subcommand b of a).
# redis-py also sends client|setinfo (Redis 7.2+) and carries on when it is refused.
WORKER_COMMANDS: dict[str, tuple[str, ...]] = {
    "connect": ("hello", "auth", "client|setname", "ping"),
    "read and claim": ("xreadgroup", "xclaim", "xpending", "xgroup|create", "xinfo|consumers",
                       "xgroup|delconsumer"),
    "settle": ("xack", "hmget", "hset", "hdel", "hincrby", "evalsha", "script|load",
               "script|exists", "get", "set", "del"),
    "publish and dead-letter": ("xadd",),
    "metrics": ("scan", "type", "xinfo|stream", "xinfo|groups", "xlen", "xrange", "time"),
}
# What `secretmagic` needs to look (the read-only views; dlq replay/purge also need xadd, xdel,
# xtrim on the DLQ and the streams they replay to).
MONITOR_COMMANDS: tuple[str, ...] = (
    "hello", "auth", "client|setname", "ping", "scan", "type", "xlen",
    "xinfo|stream", "xinfo|groups", "xinfo|consumers", "xrange", "xrevrange", "xread",
    "xpending", "hmget", "time")


def worker_keys(group: str, streams: Iterable[str]) -> list[str]:
    """The key patterns the worker writes: its streams, its group's DLQ, errors and seen keys."""
    return [*sorted(set(streams)), keys.dlq_stream(group), keys.errors_key(group),
            keys.seen_pattern(group)]


def acl_rule(user: str, commands: Iterable[str], write: Iterable[str],
             read_all: bool = True) -> str:
    """An `ACL SETUSER` rule (without the password): only these commands, only these keys (plus
    read access to every key, for the views that list all streams, when `read_all`)."""
    keys_ = [*(f"~{pattern}" for pattern in write), *(["%R~*"] if read_all else [])]
    return " ".join([user, "on", "resetkeys", *keys_, "resetchannels", "-@all",
                     *(f"+{c}" for c in sorted(set(commands)))])


_LAST_ID = f"{2**64 - 2}-0"  # (2**64-1)-(2**64-1) is how Redis spells ">": new entries
_PROBE_SCRIPT = "return 1"
_SCRIPT_LOAD = object()  # SCRIPT LOAD has no key: through the client's own script_load
_PROBE_SHA = hashlib.sha1(_PROBE_SCRIPT.encode()).hexdigest()


class MissingPermission(RuntimeError):
    """The user Redis knows us as may not run a command, or touch a key, the worker needs."""


def probes(group: str, consumer: str, start_id: str, streams: Iterable[str],
           outputs: Iterable[str]) -> list[tuple[str, str, tuple[Any, ...]]]:
    """(permission, key, a command needing it that changes nothing the worker would not do
    anyway) for everything the worker does, in the order it would first need them: the group is
    created as the consumer creates it, reads and claims are this consumer's own."""
    errors, seen = keys.errors_key(group), keys.seen_key(group, "permission-probe")
    found: list[tuple[str, str, tuple[Any, ...]]] = []
    for s in streams:
        found += [
            ("xgroup|create", s, ("XGROUP", "CREATE", s, group, start_id, "MKSTREAM")),
            # Its own pending entries after the largest id there can be: none, nothing touched.
            ("xreadgroup", s, ("XREADGROUP", "GROUP", group, consumer, "COUNT", 1, "STREAMS", s,
                               _LAST_ID)),
            ("xack", s, ("XACK", s, group, "0-0")),
            ("xpending", s, ("XPENDING", s, group)),
            ("xclaim", s, ("XCLAIM", s, group, consumer, 0, "0-0")),
            ("xinfo|consumers", s, ("XINFO", "CONSUMERS", s, group)),
            ("xgroup|delconsumer", s, ("XGROUP", "DELCONSUMER", s, group, "permission-probe")),
        ]
    found += [("xadd", s, ("XADD", s, "NOMKSTREAM", "0-0", "permission", "probe"))
              for s in [*outputs, keys.dlq_stream(group)]]
    return [*found,
            ("hmget", errors, ("HMGET", errors, "permission-probe")),
            ("hset", errors, ("HSET", errors, "permission-probe", "")),
            ("hincrby", errors, ("HINCRBY", errors, "permission-probe", 0)),
            ("hdel", errors, ("HDEL", errors, "permission-probe")),
            ("get", seen, ("GET", seen)),
            ("set", seen, ("SET", seen, "probe", "PX", 1)),
            ("del", seen, ("DEL", seen)),
            ("script|load", seen, (_SCRIPT_LOAD, _PROBE_SCRIPT)),
            ("evalsha", seen, ("EVALSHA", _PROBE_SHA, 1, seen))]


async def check(client: Any, group: str, consumer: str, start_id: str, streams: Iterable[str],
                outputs: Iterable[str]) -> None:
    """Send each command the worker needs once; MissingPermission names the first one Redis
    refuses."""
    for permission, key, command in probes(group, consumer, start_id, streams, outputs):
        try:
            if command[0] is _SCRIPT_LOAD:  # a cluster client loads it on every master
                await client.script_load(*command[1:])
            else:
                await client.execute_command(*command)
        except rx.NoPermissionError as exc:
            raise MissingPermission(
                f"the Redis user may not {permission} on {key!r} ({exc}); grant what "
                "docs/redis-acl.md lists") from None
        except rx.ResponseError:
            pass  # past the ACL check: NOGROUP, no such key, an id too small … change nothing
