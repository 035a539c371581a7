"""Redis past one server, for the tests: a Redis Cluster (3 masters, 3 replicas), a Sentinel setup
(a master, a replica, 3 sentinels), TLS with a private CA, ACL users — each started from the
`redis-server` binary on loopback ports of its own and torn down after the test.

The cluster is assembled with CLUSTER MEET / ADDSLOTS / REPLICATE (no redis-cli needed);
certificates are made with the `openssl` command.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.services import HOST, PrivateRedis, free_port, port_open, wait_for

NODE_TIMEOUT_MS = 1500  # how long a master may be silent before its replica takes over


# --- cluster -------------------------------------------------------------------------------------


@dataclass
class Cluster:
    masters: list[PrivateRedis] = field(default_factory=list)
    replicas: list[PrivateRedis] = field(default_factory=list)

    @property
    def nodes(self) -> list[PrivateRedis]:
        return [*self.masters, *self.replicas]

    @property
    def seeds(self) -> str:
        """MESSENGER_CLUSTER_NODES for it."""
        return ",".join(f"{HOST}:{n.port}" for n in self.masters)

    def client(self, node: PrivateRedis) -> Any:  # CLUSTER replies are parsed into dicts/lists
        return redis.Redis(host=HOST, port=node.port, socket_timeout=5)

    def healthy(self) -> bool:
        """Every live node says the cluster is ok and sees three masters serving all slots."""
        for node in self.nodes:
            if node.proc is None:
                continue
            info: Any = self.client(node).cluster("INFO")
            if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != 16384:
                return False
        return True

    def master_of(self, slot: int) -> PrivateRedis:
        node = self.live()[0]
        for start, end, master, *_ in self.client(node).cluster("SLOTS"):
            if start <= slot <= end:
                port = int(master[1])
                return next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"no master serves slot {slot}")

    def live(self) -> list[PrivateRedis]:
        return [n for n in self.nodes if n.proc is not None]

    def kill_master_of(self, key: str) -> PrivateRedis:
        """Kill the master serving `key` and wait until its replica has taken over."""
        slot = int(self.client(self.live()[0]).cluster("KEYSLOT", key))
        victim = self.master_of(slot)
        victim.kill()
        wait_for(lambda: self.master_of(slot).port != victim.port and self.healthy(), 30,
                 f"a replica promoted for slot {slot}")
        return victim



def logged_ids(*logs: Path) -> list[str]:
    """The event ids recorder workers (tests.apps.recorder, RECORDER_LOG) handled, repeats kept."""
    return [line for log in logs if log.exists() for line in log.read_text().split()]


def drained(r: Any, streams: list[str], group: str, logs: list[Path]) -> set[str]:
    """The event ids the (failed-over) Redis kept in `streams`, once the recorders have handled
    every one of them and nothing is pending in `group`."""
    kept = {f[b"event_id"].decode() for s in streams for _, f in r.xrange(s)}
    wait_for(lambda: kept <= set(logged_ids(*logs)), 90, "every kept event handled")
    wait_for(lambda: all(r.xpending(s, group)["pending"] == 0 for s in streams), 30,
             "nothing pending")
    return kept


def _cluster_node(*options: str) -> PrivateRedis:
    """A cluster node: its bus listens on port + 10000, which must be a free port too."""
    node = PrivateRedis(*options)
    while node.port + 10000 > 65535 or port_open(node.port + 10000):
        node.port = free_port()
    return node.start()


@contextlib.contextmanager
def cluster(*args: str) -> Iterator[Cluster]:
    """A 3-master / 3-replica Redis Cluster on loopback."""
    c = Cluster()
    options = ["--cluster-enabled", "yes", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
               "--appendonly", "no", *args]
    try:
        c.masters = [_cluster_node(*options) for _ in range(3)]
        c.replicas = [_cluster_node(*options) for _ in range(3)]
        first = c.client(c.masters[0])
        for node in c.nodes[1:]:
            first.cluster("MEET", HOST, node.port)
        wait_for(lambda: len(first.cluster("NODES")) == 6, 20, "six cluster nodes met")
        bounds = [(0, 5460), (5461, 10922), (10923, 16383)]
        for master, (lo, hi) in zip(c.masters, bounds, strict=True):
            c.client(master).execute_command("CLUSTER", "ADDSLOTS", *range(lo, hi + 1))  # 6.2 too
        for master, replica in zip(c.masters, c.replicas, strict=True):
            master_id = c.client(master).cluster("MYID")
            wait_for(functools.partial(_knows, c.client(replica), master_id), 20, "nodes known")
            c.client(replica).cluster("REPLICATE", master_id)
        wait_for(c.healthy, 30, "cluster_state:ok")
        for replica in c.replicas:  # a replica that never synced would not take over
            wait_for(functools.partial(_synced, c.client(replica)), 30, "replication links up")
        yield c
    finally:
        for node in c.nodes:
            node.close()


def _synced(client: Any) -> bool:
    return bool(client.info("replication")["master_link_status"] == "up")


def _knows(client: Any, node_id: Any) -> bool:
    node = node_id.decode() if isinstance(node_id, bytes) else str(node_id)
    return node in str(client.cluster("NODES"))


# --- sentinel ------------------------------------------------------------------------------------


@dataclass
class SentinelSetup:
    master: PrivateRedis
    replica: PrivateRedis
    sentinels: list[subprocess.Popen[bytes]]
    ports: list[int]
    dir: Path
    name: str = "mymaster"

    @property
    def addresses(self) -> str:
        """MESSENGER_SENTINELS for it."""
        return ",".join(f"{HOST}:{p}" for p in self.ports)

    def current_master(self) -> int:
        s: Any = redis.Redis(host=HOST, port=self.ports[0], socket_timeout=5)
        _host, port = s.sentinel_get_master_addr_by_name(self.name)
        return int(port)


@contextlib.contextmanager
def sentinel_setup() -> Iterator[SentinelSetup]:
    """A master, its replica and three sentinels watching it (quorum 2, down after 1 s)."""
    workdir = Path(tempfile.mkdtemp(prefix="sm-sentinel-"))
    master = PrivateRedis("--appendonly", "no").start()
    replica = PrivateRedis("--replicaof", HOST, str(master.port)).start()
    sentinels: list[subprocess.Popen[bytes]] = []
    ports = [free_port() for _ in range(3)]
    try:
        for port in ports:
            conf = workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind {HOST}\ndir {workdir}\n"
                f"sentinel monitor mymaster {HOST} {master.port} 2\n"
                "sentinel down-after-milliseconds mymaster 1000\n"
                "sentinel failover-timeout mymaster 5000\n"
                "sentinel parallel-syncs mymaster 1\n")
            sentinels.append(subprocess.Popen(
                [master.binary, str(conf), "--sentinel"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in ports:
            wait_for(functools.partial(port_open, port), 10, f"sentinel on {port}")
        setup = SentinelSetup(master, replica, sentinels, ports, workdir)
        wait_for(lambda: _sees_replica(setup), 30, "the sentinels to see the replica")
        yield setup
    finally:
        for proc in sentinels:
            proc.terminate()
        for proc in sentinels:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        master.close()
        replica.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _sees_replica(setup: SentinelSetup) -> bool:
    for port in setup.ports:
        s: Any = redis.Redis(host=HOST, port=port, socket_timeout=2)
        if not s.sentinel_slaves(setup.name) or len(s.sentinel_sentinels(setup.name)) < 2:
            return False
    return True


# --- TLS -----------------------------------------------------------------------------------------


@dataclass
class Certificates:
    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    @property
    def other_ca(self) -> Path:
        """A CA that signed nothing of this server's."""
        return self.dir / "other-ca.crt"


def make_certificates(workdir: Path, hostnames: tuple[str, ...] = ("localhost", "127.0.0.1")
                      ) -> Certificates:
    """A private CA, a server certificate it signs for `hostnames`, and an unrelated CA."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the TLS tests need the `openssl` command (Debian package openssl)")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=workdir)

    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            f"/CN=secretmagic test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.crt")
    san = ",".join(f"IP:{h}" if h[0].isdigit() else f"DNS:{h}" for h in hostnames)
    (workdir / "san.cnf").write_text(f"subjectAltName={san}\n")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=redis", "-keyout", "server.key",
        "-out", "server.csr")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.crt")
    return Certificates(workdir)


def tls_server_args(certs: Certificates) -> list[str]:
    """redis-server options: TLS only, on the node's port, clients need no certificate."""
    return ["--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key),
            "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "no"]


@contextlib.contextmanager
def tls_redis(certs: Certificates, *args: str) -> Iterator[PrivateRedis]:
    """A redis-server speaking only TLS, on its port (a later `--port 0` turns plain TCP off)."""
    server = PrivateRedis(*tls_server_args(certs), *args)
    server.args = (*server.args, "--tls-port", str(server.port), "--port", "0")
    try:
        yield server.start()
    finally:
        server.close()
