"""asyncio.run for the BLE tests, checking that nothing is left running."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run, then check the test left no task or thread behind."""
    threads = set(threading.enumerate())

    async def checked() -> T:
        result = await main()
        await asyncio.sleep(0.05)  # let closed transports report connection_lost
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        assert not leftover, leftover
        return result

    result = asyncio.run(checked())
    assert set(threading.enumerate()) <= threads
    return result
