"""The request loop's parts: a lock handed over only when its holder waits, a wait that polls first."""

from __future__ import annotations

import socket

import trio
import trio.testing

from fuse.loop import _Spinner, _Waker


def test_the_lock_taken_back_at_once_wakes_no_one_but_left_free_wakes_a_waiter() -> None:
    async def main() -> None:
        waker = _Waker()
        trio.lowlevel.add_instrument(waker)
        lock = waker.new_lock()
        took: list[str] = []

        async def waiter() -> None:
            async with lock:
                took.append("waiter")

        async with trio.open_nursery() as nursery:
            await lock.__aenter__()
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()  # the waiter is parked on the lock
            for _ in range(3):  # a request answered from memory: let go, take back, in one step
                await lock.__aexit__(None, None, None)
                await lock.__aenter__()
                await trio.testing.wait_all_tasks_blocked()
            assert took == []
            await lock.__aexit__(None, None, None)
            await trio.testing.wait_all_tasks_blocked()  # the holder waits elsewhere
            assert took == ["waiter"]

    trio.run(main)


def test_the_polling_wait_returns_for_data_there_or_still_to_come() -> None:
    async def main() -> None:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            spinner = _Spinner()
            theirs.send(b"x")
            with trio.fail_after(1):
                await spinner.wait_readable(ours.fileno())
            ours.recv(1)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_send_later, theirs)
                with trio.fail_after(5):
                    await spinner.wait_readable(ours.fileno())
            assert ours.recv(1) == b"y"

    trio.run(main)


async def _send_later(sock: socket.socket) -> None:
    await trio.sleep(0.1)
    sock.send(b"y")
