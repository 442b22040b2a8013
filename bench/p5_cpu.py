"""`python -m bench.p5_cpu`: the gateway's CPU per pushed frame, `/ws` against
`/socket.io/`, in one sitting.

P5's burst (5,000 sockets of one user, `new_message` events through Kafka), but each
gateway gets several bursts and the figure is its CPU (user + system, /proc) over the
bursts alone ÷ the frames; the transports alternate round by round so a busy machine
shifts both alike. `--src DIR` runs one transport's gateway from another checkout too
(`--ab`: both checkouts, both transports, alternating). `--profile DIR` samples the
gateway with py-spy during the bursts (raw collapsed stacks, one file per gateway).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.data import new_message_event
from bench.node import clients_argv, ensure_node_modules
from bench.p5_burst import _SIO_PATH, USER
from bench.procs import (
    LOAD_CPU,
    NOFILE,
    SERVER_CPU,
    Children,
    cpu_seconds,
    free_port,
    python_argv,
    wait_http,
)
from bench.stage import Stage, stage
from hubcore.kafka import Topics, create_producer
from hubcore.settings import Settings


async def _quiet(pid: int, before: float) -> float:
    """The process's CPU seconds once it has moved past `before` and then stood still for
    half a second (the burst, or the teardown, is over)."""
    last, still = cpu_seconds(pid), 0
    while last == before and still < 100:  # not started yet (at most 10 s)
        await asyncio.sleep(0.1)
        last, still = cpu_seconds(pid), still + 1
    still = 0
    while still < 5:
        await asyncio.sleep(0.1)
        now = cpu_seconds(pid)
        still = still + 1 if now == last else 0
        last = now
    return last


async def _one(
    kids: Children,
    st: Stage,
    name: str,
    proto: str,
    *,
    sockets: int,
    events: int,
    bursts: int,
    src: str | None,
    profile: Path | None,
    settle: float,
) -> dict[str, Any]:
    port = free_port()
    env = st.env(HUB_GATEWAY_PORT=str(port))
    if src:
        env["PYTHONPATH"] = src + (
            ":" + os.environ["PYTHONPATH"] if "PYTHONPATH" in os.environ else ""
        )
    # -P: `python -m` would put the cwd (this checkout) before PYTHONPATH.
    argv = [sys.executable, "-P", "-m", "hub", "gateway"] if src else python_argv("hub", "gateway")
    gateway = await kids.start(name, argv, env=env, cpu=SERVER_CPU, nofile=NOFILE)
    await wait_http(f"http://127.0.0.1:{port}/health", gateway)
    path = "/ws" if proto == "hub" else _SIO_PATH
    clients = await kids.start(
        f"{name}-clients",
        clients_argv(
            f"ws://127.0.0.1:{port}{path}",
            sockets,
            proto=proto,
            # One frame more than sent: the clients hold their sockets until stdin closes,
            # so the gateway's teardown of 5,000 sockets is never inside a measured burst.
            expect=events * bursts + 1,
            timeout=300,
            token=st.token(USER),
        ),
        cpu=LOAD_CPU,
        nofile=NOFILE,
        pipe=True,
    )
    await clients.json_line("ready", timeout=300)
    producer = create_producer(st.settings)
    await producer.start()
    spy = None
    try:
        topic = Topics.from_settings(st.settings).user_events
        await asyncio.sleep(settle)  # let the connect burst's stragglers settle
        if profile is not None:
            spy = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(gateway.pid),
                "--rate",
                "200",
                "--format",
                "raw",
                "-o",
                str(profile / f"{name}.txt"),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await asyncio.sleep(1.0)

        cpu, per_burst = 0.0, []
        for b in range(bursts):
            values = [new_message_event(USER, b * events + n).to_json() for n in range(events)]
            before = cpu_seconds(gateway.pid)
            acks = [await producer.send(topic, key=USER.encode(), value=v) for v in values]
            await asyncio.gather(*acks)
            last = await _quiet(gateway.pid, before)
            cpu += last - before
            per_burst.append(round((last - before) / sockets / events * 1e6, 2))
        assert clients.process.stdin is not None
        before = cpu_seconds(gateway.pid)
        clients.process.stdin.close()
        done = await clients.json_line("done", timeout=120)
        await kids.stop(clients)
        last = await _quiet(gateway.pid, before)
        teardown = round((last - before) / sockets * 1e6, 1)
    finally:
        await producer.stop()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            await spy.wait()
    await kids.stop(clients)
    await kids.stop(gateway)
    frames = done["frames"]
    return {
        "frames": frames,
        "cpu_us": round(cpu / max(frames, 1) * 1e6, 2),
        "bursts_us": per_burst,
        "teardown_us_per_socket": teardown,
    }


async def main(args: argparse.Namespace) -> None:
    ensure_node_modules()
    base = Settings()
    variants = [(p, None) for p in args.protos.split(",")]
    if args.src:
        variants += [(p, args.src) for p in args.protos.split(",")]
    profile = Path(args.profile) if args.profile else None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[float]] = {}
    log_dir = Path(tempfile.mkdtemp(prefix="hub-p5cpu-"))
    print(f"logs in {log_dir}", flush=True)
    async with stage(base, "p5cpu") as st, Children(log_dir) as kids:
        for r in range(args.rounds):
            for proto, src in variants:
                label = f"{proto}{'-src' if src else ''}"
                started = time.monotonic()
                res = await _one(
                    kids,
                    st,
                    f"gw-{label}-{r}",
                    proto,
                    sockets=args.sockets,
                    events=args.events,
                    bursts=args.bursts,
                    src=src,
                    profile=profile,
                    settle=args.settle,
                )
                results.setdefault(label, []).append(res["cpu_us"])
                took = time.monotonic() - started
                print(f"round {r} {label}: {res} ({took:.0f} s)", flush=True)
    for label, values in results.items():
        print(f"{label}: cpu us/frame {sorted(values)}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protos", default="hub,sio", help="hub (/ws) and/or sio")
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--events", type=int, default=20, help="events per burst")
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=1.0, help="seconds before bursts")
    parser.add_argument("--src", help="also run each transport from this checkout")
    parser.add_argument("--profile", help="py-spy the gateways into this directory")
    args = parser.parse_args()
    if args.src:
        args.src = str(Path(args.src).resolve())
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
