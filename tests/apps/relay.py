"""A TCP relay on loopback that can go half-open: what a NAT or load balancer that dropped its
state looks like to both ends.

    relay = HalfOpenRelay(port).start()   127.0.0.1:relay.port -> 127.0.0.1:port
    relay.cut()       every connection, open or new, stops forwarding; nothing is closed (no FIN,
                      no RST): writes succeed, replies never come, TCP keepalive is answered by
                      the relay's own socket, so only an application timeout can tell
    relay.restore()   new connections forward again; those that were open during the cut stay
                      silent for good (their state is gone, as in the NAT)
    relay.close()

It runs an event loop on a thread of its own, so a test (sync or async) and a worker process
on the other side are not held up by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future

HOST = "127.0.0.1"
CHUNK = 1 << 16


class _Link:
    """One client connection and its upstream; `frozen` once a cut has touched it."""

    def __init__(self, frozen: bool) -> None:
        self.frozen = frozen
        self.writers: list[asyncio.StreamWriter] = []


class HalfOpenRelay:
    def __init__(self, target_port: int, target_host: str = HOST) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0  # accepted so far
        self._cut = False
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="relay", daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> HalfOpenRelay:
        self._thread.start()
        self._call(self._listen()).result(10)
        return self

    def cut(self) -> None:
        self._call(self._set_cut(True)).result(10)

    def restore(self) -> None:
        self._call(self._set_cut(False)).result(10)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call(self._shutdown()).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # --- on the relay's loop ---------------------------------------------------------------------

    def _call(self, coro: object) -> Future[object]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _set_cut(self, cut: bool) -> None:
        self._cut = cut
        if cut:
            for link in self._links:
                link.frozen = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        link = _Link(frozen=self._cut)
        link.writers.append(writer)
        self._links.add(link)
        try:
            if link.frozen:  # accepted, never connected upstream: a black hole
                await _drain(reader)
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            link.writers.append(up_writer)
            await asyncio.gather(_pump(reader, up_writer, link), _pump(up_reader, writer, link))
        except (OSError, asyncio.CancelledError):  # the upstream refused, or the relay closes
            pass
        finally:
            self._links.discard(link)
            for w in link.writers:
                w.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            for w in link.writers:
                w.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)


async def _drain(reader: asyncio.StreamReader) -> None:
    while await reader.read(CHUNK):
        pass


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, link: _Link) -> None:
    """Copy src to dst until EOF; once the link is frozen, read and drop (the peer's writes are
    acknowledged by the kernel, as on a path that silently loses them further on)."""
    while data := await src.read(CHUNK):
        if link.frozen:
            continue
        dst.write(data)
        await dst.drain()
    if not link.frozen:
        with contextlib.suppress(OSError):
            dst.write_eof()
    else:  # a frozen link never tells the other side anything, not even an EOF
        await asyncio.Event().wait()
