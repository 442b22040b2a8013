"""Bounded thread pools for blocking calls to servers users name (IMAP, SMTP).

`asyncio.to_thread` shares one default pool (min(32, CPUs + 4) threads) with everything
else: a few IMAP accounts pointing at a server that accepts and never answers held all of
it, 30 s per call, and every user's polling and SMTP sends waited (issue 22). Each kind
of call gets a pool of its own, and within it one user's calls hold at most `per_user`
threads; the rest wait without holding one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from hubcore.settings import Settings

T = TypeVar("T")


@dataclass(slots=True)
class _UserSlots:
    free: asyncio.Semaphore
    calls: int = 0  # holding or waiting; the entry goes when it drops to 0


class BlockingLane:
    """A named pool of `threads` threads shared fairly between users."""

    def __init__(self, name: str, threads: int, per_user: int) -> None:
        self.name = name
        self.threads, self.per_user = threads, per_user
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=f"hub-{name}")
        # Per event loop (a semaphore belongs to one): tests run a loop each.
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _UserSlots]] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, user_id: str, call: Callable[..., T], *args: object) -> T:
        """`call(*args)` in a thread of this pool, once `user_id` has a slot free. The
        slot is held until the call returns, also when the awaiting task is cancelled
        (a thread cannot be stopped: end its call by closing its socket)."""
        loop = asyncio.get_running_loop()
        users = self._loops.setdefault(loop, {})
        slots = users.get(user_id)
        if slots is None:
            slots = users[user_id] = _UserSlots(asyncio.Semaphore(self.per_user))
        slots.calls += 1
        try:
            await slots.free.acquire()
        except BaseException:
            self._leave(users, user_id, slots)
            raise
        try:
            future: Future[T] = self._executor.submit(call, *args)
        except BaseException:
            self._release(users, user_id, slots)
            raise

        def done(_: Future[T]) -> None:
            # A closed loop took its slots with it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._release, users, user_id, slots)

        future.add_done_callback(done)
        return await asyncio.wrap_future(future)

    def _release(self, users: dict[str, _UserSlots], user_id: str, slots: _UserSlots) -> None:
        slots.free.release()
        self._leave(users, user_id, slots)

    @staticmethod
    def _leave(users: dict[str, _UserSlots], user_id: str, slots: _UserSlots) -> None:
        slots.calls -= 1
        if slots.calls == 0 and users.get(user_id) is slots:
            del users[user_id]


_LANES: dict[tuple[str, int, int], BlockingLane] = {}


def lane(name: str, threads: int, per_user: int) -> BlockingLane:
    """The process's pool `name` of that size (made on first use)."""
    key = (name, threads, per_user)
    found = _LANES.get(key)
    if found is None:
        found = _LANES[key] = BlockingLane(name, threads, per_user)
    return found


def imap_lane(settings: Settings) -> BlockingLane:
    """IMAP calls of every email poller of the process."""
    return lane("imap", settings.imap_threads, settings.blocking_threads_per_user)


def smtp_lane(settings: Settings) -> BlockingLane:
    """SMTP sessions of every email reply of the process."""
    return lane("smtp", settings.smtp_threads, settings.blocking_threads_per_user)


def shut(sock: socket.socket) -> None:
    """End, from any thread, a call blocked on `sock`: its read or write returns at once
    and the call fails (its thread is free again)."""
    with contextlib.suppress(OSError):
        # The plain socket's shutdown: on a TLS socket it is safe from another thread (no
        # TLS close_notify is attempted, which would block too).
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def connect_pinned(
    address: str,
    port: int,
    timeout: float | None,
    watch: Callable[[socket.socket], None],
    *,
    tls: tuple[ssl.SSLContext, str] | None = None,
    connect_timeout: float | None = None,
) -> socket.socket:
    """A connection to `address`, the one the outbound policy checked, given to `watch`
    (which may `shut` it) at once; with `tls` (context, host name), in TLS verified for
    the host name, watched before the handshake, which a tarpit never finishes.
    `timeout` bounds each operation, `connect_timeout` (default: `timeout`) the connect."""
    sock = socket.create_connection((address, port), connect_timeout or timeout)
    sock.settimeout(timeout)
    if tls is None:
        watch(sock)
        return sock
    return watched_tls(sock, *tls, watch)


def watched_tls(
    sock: socket.socket,
    context: ssl.SSLContext,
    server_name: str,
    watch: Callable[[socket.socket], None],
) -> ssl.SSLSocket:
    """`sock` in TLS verified for `server_name`, given to `watch` before the handshake."""
    wrapped = context.wrap_socket(sock, server_hostname=server_name, do_handshake_on_connect=False)
    watch(wrapped)
    wrapped.do_handshake()
    return wrapped
