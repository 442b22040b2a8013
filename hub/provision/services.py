"""`hub services up|down|status`: the local Kafka broker (or cluster) and MongoDB-compatible
server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pymongo.uri_parser import parse_uri

from hub.provision.cache import file_lock
from hub.provision.ferretdb import FerretDBServer
from hub.provision.kafka import KafkaServer, cluster_nodes, cluster_ports
from hub.provision.process import ManagedProcess, ProvisionError
from hubcore.kafka import kafka_ping
from hubcore.mongo import mongo_ping
from hubcore.settings import Settings

T = TypeVar("T")
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def project_root() -> Path:
    """The checkout this package runs from (editable install), else the working directory."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def resolve_path(path: Path) -> Path:
    """Relative setting paths are relative to the project root, wherever `hub` is run from."""
    return path if path.is_absolute() else project_root() / path


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even if the caller is inside a loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    host, _, port = address.split(",")[0].strip().rpartition(":")
    if not host:
        return port, default_port
    return host.strip("[]"), int(port)


class _Server(Protocol):
    name: str

    @property
    def process(self) -> ManagedProcess: ...

    def prepare(self) -> list[str]: ...


@dataclass
class ServiceState:
    """One line of `hub services status`."""

    name: str
    address: str
    answering: bool
    pid: int | None

    def describe(self) -> str:
        if self.answering and self.pid:
            return f"{self.name:9} running   {self.address}  (pid {self.pid}, started by hub)"
        if self.answering:
            return f"{self.name:9} running   {self.address}  (not started by hub)"
        if self.pid:
            return f"{self.name:9} starting  {self.address}  (pid {self.pid}, not answering yet)"
        return f"{self.name:9} stopped   {self.address}"


class LocalServices:
    """Starts, stops and reports the two servers the hub needs, on this machine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = resolve_path(settings.services_dir)
        kafka_host, kafka_port = _host_port(settings.kafka_bootstrap, 9092)
        mongo_host, mongo_port = parse_uri(settings.mongo_url)["nodelist"][0]
        self.kafka_host, self.mongo_host = kafka_host, mongo_host
        self.kafka_nodes = (
            cluster_nodes(
                self.home,
                settings.kafka_version,
                cluster_ports(kafka_port, settings.kafka_brokers),
                cache=settings.cache_dir,
            )
            if settings.kafka_brokers > 1
            else [
                KafkaServer(
                    self.home,
                    settings.kafka_version,
                    port=kafka_port,
                    controller_port=kafka_port + 1,
                    cache=settings.cache_dir,
                )
            ]
        )
        self.ferretdb = FerretDBServer(
            self.home, settings.ferretdb_version, port=mongo_port, cache=settings.cache_dir
        )

    # -- probes -----------------------------------------------------------------------
    def kafka_answers(self, timeout: float = 3.0, node: KafkaServer | None = None) -> bool:
        """The configured bootstrap answers (or, with `node`, that node of the cluster)."""
        bootstrap = self.settings.kafka_bootstrap if node is None else node.bootstrap
        return run_sync(kafka_ping(bootstrap, timeout))

    def mongo_answers(self, timeout: float = 3.0) -> bool:
        return run_sync(mongo_ping(self.settings.mongo_url, timeout))

    def status(self) -> list[ServiceState]:
        """What answers where, and which of it the hub started."""
        if len(self.kafka_nodes) == 1:
            kafka = [
                ServiceState(
                    "kafka",
                    self.settings.kafka_bootstrap,
                    self.kafka_answers(),
                    self.kafka_nodes[0].process.pid(),
                )
            ]
        else:
            kafka = [
                ServiceState(n.name, n.bootstrap, self.kafka_answers(node=n), n.process.pid())
                for n in self.kafka_nodes
            ]
        return [
            *kafka,
            ServiceState(
                "mongodb",
                self.settings.mongo_url,
                self.mongo_answers(),
                self.ferretdb.process.pid(),
            ),
        ]

    # -- up / down --------------------------------------------------------------------
    def _start(
        self,
        server: _Server,
        host: str,
        variable: str,
        address: str,
        answers: Callable[..., bool],
        echo: Callable[[str], None],
        timeout: float,
    ) -> bool:
        """Start one server unless it answers; True when this call started it."""
        if answers():
            echo(f"{server.name}: already running at {address}")
            return False
        if host not in LOCAL_HOSTS:
            raise ProvisionError(
                f"{variable}={address} does not answer, and `hub services` only starts "
                "servers on this machine: start that server or point the setting at localhost"
            )
        proc = server.process
        launched = proc.pid() is None
        if launched:
            started = time.monotonic()
            argv = server.prepare()
            echo(f"{server.name}: ready to start ({time.monotonic() - started:.1f}s provisioning)")
            proc.start(argv, cwd=self.home)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if answers(timeout=2.0):
                echo(f"{server.name}: running at {address} (pid {proc.pid()})")
                return launched
            if proc.pid() is None:
                break
            time.sleep(0.3)
        tail = proc.log_tail()
        server_log = self.home / "run" / f"{server.name}-server.log"
        if server_log.exists():
            tail += "\n" + "\n".join(server_log.read_text(errors="replace").splitlines()[-30:])
        proc.stop(timeout=5)
        raise ProvisionError(f"{server.name} did not come up at {address}; its log ends:\n{tail}")

    def up(self, echo: Callable[[str], None] = print, timeout: float = 120.0) -> list[str]:
        """Provision on first use and start both servers; return once both answer.

        Returns the names of the servers this call started (not those already running).
        Calls at once (pytest-xdist workers, two shells) take turns: the first starts them.
        """
        with file_lock(self.home / "run" / "services-up.lock"):
            return self._up(echo, timeout)

    def _up(self, echo: Callable[[str], None], timeout: float) -> list[str]:
        s = self.settings
        alone = len(self.kafka_nodes) == 1
        # A cluster's nodes start together: none answers before a quorum of them runs.
        with ThreadPoolExecutor(len(self.kafka_nodes) + 1) as pool:
            futures = [
                pool.submit(
                    self._start,
                    node,
                    self.kafka_host,
                    "HUB_KAFKA_BOOTSTRAP",
                    s.kafka_bootstrap if alone else node.bootstrap,
                    self.kafka_answers if alone else partial(self.kafka_answers, node=node),
                    echo,
                    timeout,
                )
                for node in self.kafka_nodes
            ]
            futures.append(
                pool.submit(
                    self._start,
                    self.ferretdb,
                    self.mongo_host,
                    "HUB_MONGO_URL",
                    s.mongo_url,
                    self.mongo_answers,
                    echo,
                    timeout,
                )
            )
            errors, started = [], []
            names = [*(n.name for n in self.kafka_nodes), self.ferretdb.name]
            for name, future in zip(names, futures, strict=True):
                try:
                    if future.result():
                        started.append(name)
                except ProvisionError as exc:
                    errors.append(str(exc))
        if errors:
            raise ProvisionError("\n\n".join(errors))
        return started

    def down(self, echo: Callable[[str], None] = print, only: Sequence[str] | None = None) -> None:
        """Stop what `up` started (by pid file) and nothing else; `only` names a subset."""
        servers: list[_Server] = [*self.kafka_nodes, self.ferretdb]
        for server in servers:
            if only is not None and server.name not in only:
                continue
            if server.process.stop():
                echo(f"{server.name}: stopped")
            else:
                echo(f"{server.name}: not started by hub, left alone")
