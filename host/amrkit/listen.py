"""`amr listen`: the reference receiver loop.

Advertising payloads come from a bleak scanner (any bleak backend) or from a
capture file; each verified event is printed as one JSON line and, with a
webhook, queued in the durable outbox before it is forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from amrkit.acker import TURN_S, Acker
from amrkit.outbox import Outbox
from amrkit.receiver import Receiver, ad_from_manufacturer_data

Advert = tuple[float, bytes, int | None]  # time (s), AD payload, RSSI
Source = Callable[["asyncio.Queue[Advert | None]"], Coroutine[Any, Any, None]]
SUPERVISION_CHECK_S = 10.0


async def _ack_turns(acker: Acker) -> None:
    while True:
        await acker.step()
        await asyncio.sleep(TURN_S)


def ble_source(adapter: str | None = None, transport: str | None = None) -> Source:
    """Payloads heard by a bleak scanner, until cancelled: the platform's
    backend (BlueZ adapter `adapter`), or bumble on `transport` (an HCI
    dongle, or the twin's virtual radio)."""

    async def produce(queue: asyncio.Queue[Advert | None]) -> None:
        from bleak import BleakScanner

        def heard(_device: Any, adv: Any) -> None:
            for company, data in adv.manufacturer_data.items():
                queue.put_nowait((time.time(), ad_from_manufacturer_data(company, data), adv.rssi))

        kwargs: dict[str, Any] = {"detection_callback": heard}
        if transport:
            from amrkit.ble.bumble import bumble_scanner

            kwargs["backend"] = bumble_scanner(transport)
        elif adapter:
            kwargs["bluez"] = {"adapter": adapter}
        async with BleakScanner(**kwargs):
            await asyncio.Event().wait()

    return produce


class CaptureError(ValueError):
    """A capture that cannot be read, or a line of it that is not a capture line."""


CAPTURE_FORMAT = '{"t": seconds, "ad": "<hex>", "rssi": dBm}'


def capture_source(path: Path) -> Source:
    """Payloads from a capture: JSON lines {"t": seconds, "ad": hex, "rssi": dBm}."""

    async def produce(queue: asyncio.Queue[Advert | None]) -> None:
        try:
            f = path.open(errors="replace")  # a binary file fails as a bad line
        except OSError as err:
            raise CaptureError(
                f"cannot read the capture {path}: {err.strerror or err}; "
                f"give a file of JSON lines {CAPTURE_FORMAT}"
            ) from err
        with f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    advert = (float(record["t"]), bytes.fromhex(record["ad"]), record.get("rssi"))
                except (ValueError, KeyError, TypeError) as err:
                    raise CaptureError(
                        f"{path}:{n}: not a capture line ({err}); expected {CAPTURE_FORMAT}"
                    ) from err
                await queue.put(advert)
                # Let the listener take each line as it comes: a capture may
                # be a pipe that a recorder is still writing.
                await asyncio.sleep(0)
        await queue.put(None)

    return produce


async def listen(
    receiver: Receiver,
    source: Source,
    emit: Callable[[dict[str, Any]], None],
    outbox: Outbox | None = None,
    clock: Callable[[], float] = time.time,
    acker: Acker | None = None,
    duration_s: float | None = None,
) -> None:
    """Feed every payload to the receiver; emit (and queue) every event.

    Supervision is checked every SUPERVISION_CHECK_S of advert time, and on
    the clock when nothing is heard at all (a jammed or silent unit must
    still be reported). With an acker, every alert frame heard (first or
    retransmission), and every test press, is acknowledged over the air.
    With duration_s, listening stops after that many seconds.
    """
    stop = threading.Event()
    forwarder = None
    if outbox is not None:
        forwarder = threading.Thread(target=outbox.run, args=(stop,), daemon=True)
        forwarder.start()

    def publish(events: list[dict[str, Any]]) -> None:
        for event in events:
            if outbox is not None:
                outbox.put(event)  # durable before it is shown as handled
            emit(event)

    queue: asyncio.Queue[Advert | None] = asyncio.Queue()
    producer = asyncio.create_task(source(queue))
    # A source that ends (a capture's end, or an error) ends the loop at once.
    producer.add_done_callback(lambda _task: queue.put_nowait(None))
    acking = asyncio.create_task(_ack_turns(acker)) if acker is not None else None
    if duration_s is not None:
        asyncio.get_running_loop().call_later(duration_s, queue.put_nowait, None)
    watched = False  # units are supervised from the first advert, or the first quiet spell
    next_check = 0.0
    try:
        while True:
            try:
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that
                # arrives as the get completes (gh-86296), and with adverts
                # pouring in, cancelling listen() (amr check does) could hang.
                async with asyncio.timeout(SUPERVISION_CHECK_S):
                    item = await queue.get()
            except TimeoutError:
                if producer.done():
                    producer.result()  # a failed source ends the loop with its error
                if not watched:
                    receiver.watch(clock())
                    watched = True
                publish(receiver.check_supervision(clock()))
                continue
            if item is None:
                break
            t, ad, rssi = item
            if not watched:
                receiver.watch(t)
                watched = True
            publish(receiver.feed(ad, t, rssi))
            if acker is not None:
                # A test press is acknowledged like an alert (so the unit
                # stops retrying it), and reported as a test press only.
                for heard in (receiver.last_alert, receiver.last_test):
                    if heard is not None:
                        acker.acknowledge(receiver.ack_ad(*heard))
            if t >= next_check:
                publish(receiver.check_supervision(t))
                next_check = t + SUPERVISION_CHECK_S
        if duration_s is None:
            await producer
    finally:
        for task in (producer, acking):
            if task is None:
                continue
            if task.done():
                task.result()  # a source or acknowledger that failed says so
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        stop.set()
        if forwarder is not None:
            forwarder.join(timeout=5)
            if outbox is not None and not forwarder.is_alive():
                # Events put since the forwarder's last pass (the end of a
                # capture, say) go out now; any the endpoint refuses stay
                # queued for the next run.
                outbox.deliver_once()


async def session(
    receiver: Receiver,
    source: Source,
    emit: Callable[[dict[str, Any]], None],
    outbox: Outbox | None = None,
    *,
    ack_transport: str | None = None,
    duration_s: float | None = None,
) -> None:
    """listen(), acknowledging alerts over the air through bumble on
    `ack_transport` when one is given (bleak cannot advertise)."""
    acker = Acker(ack_transport) if ack_transport else None
    if acker is not None:
        await acker.start()
    try:
        await listen(receiver, source, emit, outbox, acker=acker, duration_s=duration_s)
    finally:
        if acker is not None:
            await acker.close()
