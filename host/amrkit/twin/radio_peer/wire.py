"""The wire between a unit's firmware and its device: JSON lines, one TCP
connection per boot.

The firmware sends ``{"op": ...}`` (the operations of
amrkit.twin.platform._contract) and waits for ``{"ok": true, "result": ...}``
or ``{"ok": false, "errno", "error"}``; the device sends IRQ events
``{"ev": code, "data": [...]}`` (with ``"id"`` when the firmware's answer is
needed: bonding secrets), answered by ``{"op": "reply", "id", "result"}``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from amrkit.twin.platform._contract import OP_REPLY

ANSWER_TIMEOUT_S = 10.0

Call = Callable[[str, dict[str, Any]], Awaitable[Any]]


class PeerError(Exception):
    """A call the device cannot carry out; errno goes back to the firmware."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno


class Wire:
    """One boot's connection to the firmware."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._answers: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)

    def _send(self, message: dict[str, Any]) -> None:
        self._writer.write(json.dumps(message).encode() + b"\n")

    def event(self, code: int, data: list[Any]) -> None:
        self._send({"ev": code, "data": data})

    async def ask(self, code: int, data: list[Any]) -> Any:
        """Raise an IRQ whose handler's return value is needed, and wait for it."""
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._answers[ident] = future
        self._send({"ev": code, "data": data, "id": ident})
        try:
            return await asyncio.wait_for(future, ANSWER_TIMEOUT_S)
        finally:
            self._answers.pop(ident, None)

    async def serve(self, call: Call) -> None:
        """Carry out the firmware's calls, one at a time, until it hangs up."""
        try:
            while line := await self._reader.readline():
                message = json.loads(line)
                op = message.pop("op")
                if op == OP_REPLY:
                    future = self._answers.get(message["id"])
                    if future is not None and not future.done():
                        future.set_result(message.get("result"))
                    continue
                try:
                    result = await call(op, message)
                    self._send({"ok": True, "result": result})
                except PeerError as err:
                    self._send({"ok": False, "errno": err.errno, "error": str(err)})
                await self._writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass

    def close(self) -> None:
        for future in self._answers.values():
            if not future.done():
                future.cancel()
        self._writer.close()
