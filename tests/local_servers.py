"""Servers the connectors' tests start for themselves, on free loopback ports: a private
Kafka broker (to stop and restart without touching the shared one) and Dovecot (IMAP)."""

from __future__ import annotations

import asyncio
import getpass
import imaplib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from hub.provision.ferretdb import FerretDBServer, build_ferretdb
from hub.provision.kafka import KafkaServer, cluster_nodes, resolve_jars
from hub.provision.process import port_open
from hub.provision.services import resolve_path
from hubcore.kafka import kafka_ping
from hubcore.settings import Settings


def free_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], grace: float = 15) -> None:
    """SIGTERM a child we started, SIGKILL it after `grace` seconds; no-op if it ended."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def run_hub(
    env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run one `hub` command to its end in a child process, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_port(port: int, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open("127.0.0.1", port):
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s\n{tail}")


# --- Kafka -----------------------------------------------------------------------------


@dataclass
class PrivateKafka:
    """A single-node KRaft broker of this test's own; `stop()` and `start()` it at will."""

    server: KafkaServer
    argv: list[str]

    @property
    def bootstrap(self) -> str:
        return self.server.bootstrap

    def start(self, timeout: float = 60.0) -> None:
        self.server.process.start(self.argv)
        deadline = time.monotonic() + timeout
        while not asyncio.run(kafka_ping(self.bootstrap, timeout=2)):
            if time.monotonic() > deadline or self.server.process.pid() is None:
                raise RuntimeError(
                    "private Kafka did not start:\n" + self.server.process.log_tail()
                )
            time.sleep(0.3)

    def stop(self) -> None:
        self.server.process.stop(timeout=20)


@contextmanager
def private_kafka(tmp: Path) -> Iterator[PrivateKafka]:
    """Jars are those `hub services` resolved (`HUB_SERVICES_DIR`, fetched there if missing);
    data, config and logs live in `tmp`."""
    settings = Settings(_env_file=None)
    libs = resolve_jars(settings.kafka_version, resolve_path(settings.services_dir))
    own_libs = tmp / "kafka" / settings.kafka_version / "libs"
    own_libs.parent.mkdir(parents=True, exist_ok=True)
    own_libs.symlink_to(libs, target_is_directory=True)
    server = KafkaServer(
        tmp,
        settings.kafka_version,
        port=free_port(),
        controller_port=free_port(),
        name=f"kafka-test-{uuid.uuid4().hex[:8]}",
        heap="512m",
    )
    kafka = PrivateKafka(server, server.prepare())
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@dataclass
class PrivateCluster:
    """A KRaft cluster of this test's own: combined nodes on free loopback ports."""

    nodes: list[KafkaServer]
    argvs: list[list[str]]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def node(self, node_id: int) -> KafkaServer:
        return self.nodes[node_id - 1]

    def kill(self, node_id: int) -> None:
        """SIGKILL one node: no controlled shutdown, its leaderships move by election."""
        self.node(node_id).process.stop(timeout=0, sig=signal.SIGKILL)

    def start(self, node_id: int) -> None:
        self.node(node_id).process.start(self.argvs[node_id - 1])

    def stop_all(self) -> None:
        """SIGKILL every node: the cluster is thrown away, and a graceful stop of the last
        node waits out its timeout once the quorum is gone."""
        for node in self.nodes:
            node.process.stop(timeout=0, sig=signal.SIGKILL)


async def _brokers(bootstrap: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return len((await admin.describe_cluster())["brokers"])
    finally:
        await admin.close()


@contextmanager
def private_cluster(tmp: Path, size: int = 3, timeout: float = 150.0) -> Iterator[PrivateCluster]:
    """`size` nodes (jars as for `private_kafka`), started together; yields once the cluster
    takes acks=all writes."""
    from tests.servers import wait_writable

    settings = Settings(_env_file=None)
    libs = resolve_jars(settings.kafka_version, resolve_path(settings.services_dir))
    own_libs = tmp / "kafka" / settings.kafka_version / "libs"
    own_libs.parent.mkdir(parents=True, exist_ok=True)
    own_libs.symlink_to(libs, target_is_directory=True)
    ports = [(free_port(), free_port()) for _ in range(size)]
    nodes = cluster_nodes(tmp, settings.kafka_version, ports, heap="384m")
    with ThreadPoolExecutor(size) as pool:  # each format is a JVM start: in parallel
        cluster = PrivateCluster(nodes, list(pool.map(KafkaServer.prepare, nodes)))
    try:
        for node_id in range(1, size + 1):
            cluster.start(node_id)
        wait_writable(cluster.bootstrap, timeout)
        # Writable once a quorum runs; the topic policy counts brokers: wait for all.
        deadline = time.monotonic() + timeout
        while asyncio.run(_brokers(cluster.bootstrap)) < size:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not all {size} Kafka nodes registered in {timeout}s")
            time.sleep(0.5)
        yield cluster
    finally:
        cluster.stop_all()


# --- FerretDB --------------------------------------------------------------------------


@dataclass
class PrivateStore:
    """A FerretDB of this test's own (the shared one is never stopped); `stop()`/`start()`."""

    server: FerretDBServer
    argv: list[str]

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, timeout: float = 30.0) -> None:
        self.server.process.start(self.argv)
        wait_port(self.server.port, timeout, "private FerretDB", self.server.process.log_file)

    def stop(self) -> None:
        self.server.process.stop(timeout=10)


@contextmanager
def private_store(tmp: Path) -> Iterator[PrivateStore]:
    """The binary `hub services` built (`HUB_SERVICES_DIR`; from the machine cache if
    missing); data, pid and log in `tmp`."""
    settings = Settings(_env_file=None)
    binary = build_ferretdb(
        settings.ferretdb_version, resolve_path(settings.services_dir), cache=settings.cache_dir
    )
    own = tmp / "ferretdb" / binary.parent.parent.name
    own.mkdir(parents=True, exist_ok=True)
    (own / "bin").symlink_to(binary.parent, target_is_directory=True)
    server = FerretDBServer(tmp, settings.ferretdb_version, port=free_port(), name="ferretdb-test")
    store = PrivateStore(server, server.prepare())
    store.start()
    try:
        yield store
    finally:
        store.stop()


# --- Dovecot ---------------------------------------------------------------------------

_DOVECOT_CONF = """\
base_dir = {home}/run
state_dir = {home}/state
log_path = {home}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {internal_user}
default_login_user = {login_user}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {home}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


@dataclass
class Dovecot:
    """A running Dovecot with one user; `client()` logs in over IMAP."""

    port: int
    username: str
    password: str

    def client(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(self.username, self.password)
        return conn

    def append(self, mailbox: str, *sources: bytes) -> None:
        """Deliver mails the way a mail client files them: IMAP APPEND."""
        conn = self.client()
        try:
            conn.create(mailbox)  # NO when it exists, which is fine
            for source in sources:
                typ, data = conn.append(mailbox, None, None, source)
                assert typ == "OK", data
        finally:
            conn.logout()


@contextmanager
def dovecot_server() -> Iterator[Dovecot]:
    """Dovecot (Debian's `dovecot-imapd`, installed by scripts/system-packages.sh) on a free
    loopback port, passwd-file auth, maildirs in a temporary folder. As root, mail is owned
    by `nobody` and Dovecot's own users do the rest; otherwise all runs as the caller."""
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(binary).exists():
        raise RuntimeError("Dovecot is missing: run scripts/system-packages.sh (as root)")
    # Not pytest's tmp_path: its 0700 parents keep Dovecot's unprivileged users out.
    home = Path(tempfile.mkdtemp(prefix="hub-dovecot-"))
    try:
        with _dovecot(binary, home) as server:
            yield server
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def _dovecot(binary: str, home: Path) -> Iterator[Dovecot]:
    home.chmod(0o755)
    for sub in ("run", "state", "mail"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        internal, login, uid, gid = "dovecot", "dovenull", 65534, 65534
        os.chown(home / "mail", uid, gid)
    else:
        internal = login = getpass.getuser()
        uid, gid = os.getuid(), os.getgid()
    port = free_port()
    user, password = "alice", "imap-secret"
    (home / "passwd").write_text(f"{user}:{{PLAIN}}{password}::::::\n")
    conf = home / "dovecot.conf"
    conf.write_text(
        _DOVECOT_CONF.format(
            home=home, internal_user=internal, login_user=login, uid=uid, gid=gid, port=port
        )
    )
    log = home / "dovecot.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "-F", "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_port(port, 20, "Dovecot", home / "dovecot.log")
        yield Dovecot(port, user, password)
    finally:
        stop_process(proc, 10)


# --- nginx with deploy/nginx.conf -----------------------------------------------------
DEPLOY_NGINX_CONF = Path(__file__).resolve().parents[1] / "deploy" / "nginx.conf"


def render_nginx_conf(home: Path, listen: int, upstreams: list[int]) -> str:
    """deploy/nginx.conf for a loopback test: its routing rules as they are, with the
    upstreams' `gateway:8000` replaced by `upstreams`, files kept under `home`."""
    conf = DEPLOY_NGINX_CONF.read_text()
    servers = "".join(f"server 127.0.0.1:{port}; " for port in upstreams)
    assert conf.count("server gateway:8000 resolve;  # gateways") == 2, "deploy/nginx.conf moved"
    conf = conf.replace("server gateway:8000 resolve;  # gateways", servers)
    conf = conf.replace("resolver 127.0.0.11 valid=10s;", "")
    conf = conf.replace("listen 8000;", f"listen 127.0.0.1:{listen};")
    files = (
        f"client_body_temp_path {home}/body; proxy_temp_path {home}/proxy; "
        f"fastcgi_temp_path {home}/fcgi; uwsgi_temp_path {home}/uwsgi; "
        f"scgi_temp_path {home}/scgi; access_log off;"
    )
    conf = conf.replace("http {", "http {\n  " + files, 1)
    return f"pid {home}/nginx.pid;\nerror_log {home}/error.log;\ndaemon off;\n" + conf


@contextmanager
def nginx_proxy(upstreams: list[int]) -> Iterator[int]:
    """nginx (Debian's, installed by scripts/system-packages.sh) on a free loopback port
    serving deploy/nginx.conf in front of `upstreams`; yields its port."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise RuntimeError("nginx is missing: run scripts/system-packages.sh (as root)")
    home = Path(tempfile.mkdtemp(prefix="hub-nginx-"))
    port = free_port()
    (home / "nginx.conf").write_text(render_nginx_conf(home, port, upstreams))
    process = subprocess.Popen(
        [binary, "-p", str(home), "-c", str(home / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"nginx did not start: {process.stderr and process.stderr.read()!r}"
                )
            time.sleep(0.05)
        yield port
    finally:
        stop_process(process, 10)
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class Tarpit:
    """A server that accepts connections and never says a word (issue 22's slow server)."""

    port: int
    accepted: int = 0
    cut: int = 0  # connections the client closed (the tarpit never closes one)


@contextmanager
def tarpit() -> Iterator[Tarpit]:
    """A tarpit on a free loopback port, served by one thread until the block ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    trap = Tarpit(listener.getsockname()[1])
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            readable, _, _ = select.select([listener, *held], [], [], 0.05)
            for sock in readable:
                if sock is listener:
                    conn, _ = listener.accept()
                    held.append(conn)
                    trap.accepted += 1
                    continue
                try:
                    data = sock.recv(4096)  # what the client says is read and ignored
                except OSError:
                    data = b""
                if not data:
                    held.remove(sock)
                    sock.close()
                    trap.cut += 1

    thread = threading.Thread(target=serve, name="tarpit", daemon=True)
    thread.start()
    try:
        yield trap
    finally:
        stop.set()
        thread.join(5)
        for sock in held:
            sock.close()
        listener.close()
