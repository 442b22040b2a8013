"""A local Apache Kafka 4.x broker: jars from Maven Central via mvn, KRaft, Java 17."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from hub.provision.cache import cached_entry, copy_out, key_of
from hub.provision.process import LocalServer, ProvisionError, run_checked

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>hub.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


def find_java() -> str:
    """The `java` to run Kafka with: JAVA_HOME's, else PATH's; it must be 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise ProvisionError("Java 17+ is needed to run Kafka: install a JDK or set JAVA_HOME")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    try:
        major = int(out.split('"')[1].split(".")[0])
    except (IndexError, ValueError):
        major = 0
    if major < 17:
        raise ProvisionError(f"Kafka 4 needs Java 17 or newer; {java} is: {out.strip()[:80]}")
    return java


def _mvn_copy_jars(version: str, build: Path, libs: Path, m2: Path, log: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ProvisionError("Maven (`mvn`) is needed to fetch Kafka: apt-get install maven")
    build.mkdir(parents=True, exist_ok=True)
    (build / "pom.xml").write_text(_POM.format(version=version))
    run_checked(
        [
            mvn,
            "-q",
            "-B",
            "--strict-checksums",  # a download that fails Central's checksum stops here
            f"-Dmaven.repo.local={m2}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
        ],
        what=f"resolving org.apache.kafka:kafka_2.13:{version} from Maven Central",
        cwd=build,
        log=log,
    )


def resolve_jars(version: str, home: Path, cache: Path | None = None) -> Path:
    """Kafka `version` and its dependencies in `<home>/kafka/<version>/libs`; returns that
    folder. Copied from the machine's `cache` when given (resolved into it once), else
    downloaded there directly."""
    libs = home / "kafka" / version / "libs"
    done = libs / ".complete"
    if done.exists():
        return libs
    log = home / "run" / "provision.log"
    if cache is None:
        if libs.exists():
            shutil.rmtree(libs)
        _mvn_copy_jars(version, home / "kafka" / version, libs, home / "m2", log)
    else:

        def build(entry: Path) -> None:
            _mvn_copy_jars(version, entry.parent / ".build", entry, cache / "m2", log)

        key = f"{version}-{key_of(_POM.format(version=version))}"
        copy_out(cached_entry(cache, "kafka", key, build), libs)
    done.touch()
    return libs


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding, and (as Kafka's own
    ids) not starting with "-", which the storage tool would take for an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def cluster_ports(first: int, size: int) -> list[tuple[int, int]]:
    """(broker, controller) ports of a local cluster: node i on first + 2(i-1), + 1."""
    return [(first + 2 * i, first + 2 * i + 1) for i in range(size)]


def cluster_nodes(
    home: Path,
    version: str,
    ports: list[tuple[int, int]],
    heap: str = "512m",
    cache: Path | None = None,
) -> list[KafkaServer]:
    """Combined nodes on loopback, one per (broker, controller) port pair: all vote in one
    quorum and share one cluster id, kept in `<home>/data/kafka-cluster.id` so a restart
    finds the same cluster."""
    id_file = home / "data" / "kafka-cluster.id"
    if id_file.exists():
        cluster_id = id_file.read_text().strip()
    else:
        id_file.parent.mkdir(parents=True, exist_ok=True)
        cluster_id = new_cluster_id()
        id_file.write_text(cluster_id)
    voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports))
    return [
        KafkaServer(
            home,
            version,
            port=p,
            controller_port=c,
            name=f"kafka-{i + 1}",
            heap=heap,
            node_id=i + 1,
            voters=voters,
            cluster_size=len(ports),
            cluster_id=cluster_id,
            cache=cache,
        )
        for i, (p, c) in enumerate(ports)
    ]


@dataclass
class KafkaServer(LocalServer):
    """One combined broker+controller KRaft node on loopback, alone or one of a cluster
    (`voters` names every node's controller, `cluster_size` sizes internal topics)."""

    home: Path
    version: str
    port: int = 9092
    controller_port: int = 9093
    name: str = "kafka"
    heap: str = "1g"
    node_id: int = 1
    voters: str = ""
    cluster_size: int = 1
    cluster_id: str = ""
    cache: Path | None = None  # the machine's provisioning cache (hub.provision.cache)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        conf = self.home / "run" / f"{self.name}.properties"
        conf.parent.mkdir(parents=True, exist_ok=True)
        voters = self.voters or f"{self.node_id}@127.0.0.1:{self.controller_port}"
        rf, isr = str(min(3, self.cluster_size)), str(min(2, self.cluster_size))
        lines = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "6",
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "12",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "message.max.bytes": str(8 * 1024 * 1024),
        }
        conf.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        (self.home / "run" / f"{self.name}-log4j2.properties").write_text(
            _LOG4J2.format(log=self.home / "run" / f"{self.name}-server.log")
        )
        return conf

    def _classpath(self, libs: Path) -> str:
        return f"{libs}/*"

    def prepare(self) -> list[str]:
        """Fetch jars, write config, format storage on first use; returns the command line."""
        java = find_java()
        libs = resolve_jars(self.version, self.home, self.cache)
        conf = self._write_config()
        if not (self.data_dir / "meta.properties").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            cluster_id = self.cluster_id or new_cluster_id()
            run_checked(
                [
                    java,
                    "-cp",
                    self._classpath(libs),
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(conf),
                ],
                what="formatting the Kafka storage",
                log=self.home / "run" / "provision.log",
            )
        return [
            java,
            "-Xms256m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'run' / f'{self.name}-log4j2.properties'}",
            "-cp",
            self._classpath(libs),
            "kafka.Kafka",
            str(conf),
        ]
