"""The health a process reports on `/health`, also as Prometheus gauges.

Evaluated when `/health` is asked and at each `/metrics` scrape, so an alert on
`hub_healthy == 0` sees what a load balancer's health check sees.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Gauge

HEALTHY = Gauge(
    "hub_healthy", "1 while the process's /health answers ok, 0 while degraded.", ["process"]
)
DEPENDENCY_UP = Gauge(
    "hub_dependency_up",
    "1 while a dependency the process checks on /health (kafka, mongodb, ...) is ok.",
    ["process", "dependency"],
)


def record_health(process: str, dependencies: Mapping[str, bool]) -> bool:
    """Set the gauges of `process` from each dependency's state; True when all are ok."""
    for name, ok in dependencies.items():
        DEPENDENCY_UP.labels(process, name).set(1 if ok else 0)
    healthy = all(dependencies.values())
    HEALTHY.labels(process).set(1 if healthy else 0)
    return healthy
