"""Facts about the machine and the servers a benchmark run used (recorded in the JSON)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hubcore.mongo import create_client
from hubcore.settings import Settings


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what `platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    """Total memory in GiB (/proc/meminfo)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def kafka_version() -> str:
    """The version of the running Kafka broker, from the jars on its class path.

    The protocol does not tell a broker's release, so look for the local `kafka.Kafka`
    JVM and read `kafka_<scala>-<version>.jar` (or `kafka-server-<version>.jar`) in it.
    """
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" not in argv:
            continue
        for arg in argv:
            for entry in arg.decode(errors="replace").split(":"):
                folder = Path(entry.removesuffix("*"))
                if not folder.is_dir():
                    continue
                for jar in folder.glob("kafka*.jar"):
                    match = re.fullmatch(r"kafka(?:_[\d.]+|-server)-([\d.]+)\.jar", jar.name)
                    if match:
                        return match[1]
    return "unknown (not a local broker)"


async def ferretdb_version(url: str) -> str:
    """FerretDB's version from `buildInfo` (MongoDB's own version for a real MongoDB)."""
    client = create_client(url)
    try:
        info = await client.admin.command("buildInfo")
    finally:
        await client.close()
    if "ferretdbVersion" in info:
        return f"FerretDB {info['ferretdbVersion']} (MongoDB {info.get('version')})"
    return f"MongoDB {info.get('version')}"


def node_version() -> str:
    """`node --version`, or 'missing'."""
    try:
        out = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "missing"
    return out.stdout.strip()


async def machine_facts(settings: Settings, *, quick: bool, pinned: bool) -> dict[str, Any]:
    """Everything the JSON records under `machine`."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka": kafka_version(),
        "kafka_bootstrap": settings.kafka_bootstrap,
        "store": await ferretdb_version(settings.mongo_url),
        "node": node_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "pinned": "servers on CPU 0, load generators on CPU 1" if pinned else "no pinning",
        "quick": quick,
    }
