"""`amr listen`: the reference receiver loop.

Advertising payloads come from a bleak scanner (any bleak backend) or from a
capture file; each verified event is printed as one JSON line and, with a
webhook, queued in the durable outbox before it is forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import selectors
import stat
import threading
import time
from collections.abc import AsyncGenerator, Callable, Coroutine
from pathlib import Path
from typing import Any

from amrkit.ack_schedule import AckSchedule
from amrkit.acker import Acker
from amrkit.outbox import Outbox
from amrkit.receiver import Receiver, ad_from_manufacturer_data

Advert = tuple[float, bytes, int | None]  # time (s), AD payload, RSSI
Source = Callable[["asyncio.Queue[Advert | None]"], Coroutine[Any, Any, None]]
SUPERVISION_CHECK_S = 10.0
STOP_WAIT_S = 0.5  # how long a stopped listen() waits for the webhook forwarder


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
MAX_LINE_BYTES = 4096  # a capture line is about 100 bytes
MAX_T = 253402300800.0  # seconds: the year 10000, past what a clock or a date shows
_READ_BYTES = 65536


def _capture_line(text: str) -> Advert:
    """One capture line's advert; ValueError saying what is wrong."""
    try:
        record = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    t, ad, rssi = record.get("t"), record.get("ad"), record.get("rssi")
    # NaN and infinite times (which Python's json reads) would go out as
    # invalid JSON: the range check refuses them (and never converts an
    # integer too large for a float). bool is an int to Python, not here.
    if not isinstance(t, int | float) or isinstance(t, bool) or not 0 <= t < MAX_T:
        raise ValueError(f"t must be a finite number of seconds from 0 to {MAX_T:.0f}")
    if not isinstance(ad, str):
        raise ValueError("ad must be a string of hex digits")
    if rssi is not None and (
        not isinstance(rssi, int) or isinstance(rssi, bool) or not -128 <= rssi <= 127
    ):
        raise ValueError("rssi must be a whole number of dBm from -128 to 127, or null")
    return float(t), bytes.fromhex(ad), rssi


async def _chunks_polled(fd: int) -> AsyncGenerator[bytes, None]:
    """What a pipe, FIFO or terminal gives, as it arrives, without blocking
    the event loop (so a cancel, Ctrl-C say, ends the wait at once); ends
    when the writer closes it."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    try:
        while True:
            await readable.wait()
            readable.clear()
            try:
                chunk = os.read(fd, _READ_BYTES)
            except BlockingIOError:
                continue
            if not chunk:
                return
            yield chunk
    finally:
        loop.remove_reader(fd)


async def _chunks_plain(fd: int) -> AsyncGenerator[bytes, None]:
    """A regular file (or a device select cannot wait on), read as it is."""
    while chunk := os.read(fd, _READ_BYTES):
        yield chunk
        await asyncio.sleep(0)  # let the loop print events and take a cancel


def _pollable(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
        return False
    try:  # a character device may not support waiting (/dev/zero, /dev/null)
        with selectors.DefaultSelector() as probe:
            probe.register(fd, selectors.EVENT_READ)
    except (OSError, ValueError):
        return False
    return True


def capture_source(path: Path) -> Source:
    """Payloads from a capture: JSON lines {"t": seconds, "ad": hex, "rssi": dBm}.

    Each line is fed as soon as it is read, so a FIFO (mkfifo) or a pipe is
    followed live: a writer that has not opened it yet is waited for, and
    the capture ends when the writer closes it. A line that is not a capture
    line (t must be a finite number of seconds, rssi a whole dBm or null) is
    a CaptureError naming the file and the line.
    """

    def unreadable(why: str) -> CaptureError:
        return CaptureError(
            f"cannot read the capture {path}: {why}; give a file of JSON lines {CAPTURE_FORMAT}"
        )

    async def produce(queue: asyncio.Queue[Advert | None]) -> None:
        try:
            # Non-blocking: opening a FIFO no writer has opened yet returns at once.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as err:
            raise unreadable(err.strerror or str(err)) from err
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise unreadable("it is a directory")
            chunks = _chunks_polled(fd) if _pollable(fd) else _chunks_plain(fd)
            pending = b""
            n = 0
            try:
                # aclosing: a bad line ends the reading (its reader removed)
                # before the file is closed.
                async with contextlib.aclosing(chunks):
                    async for chunk in chunks:
                        pending += chunk
                        *lines, pending = pending.split(b"\n")
                        if len(pending) > MAX_LINE_BYTES:
                            lines.append(pending)  # reported as too long below
                        for line in lines:
                            n += 1
                            advert = _advert(path, n, line)
                            if advert is not None:  # None ends the capture
                                await queue.put(advert)
                                # The listener takes each line as it comes.
                                await asyncio.sleep(0)
            except OSError as err:
                raise unreadable(err.strerror or str(err)) from err
            last = _advert(path, n + 1, pending)  # a last line with no newline
            if last is not None:
                await queue.put(last)
        finally:
            os.close(fd)
        await queue.put(None)

    return produce


def _advert(path: Path, n: int, line: bytes) -> Advert | None:
    """Line n of a capture as an advert (None for a blank line), or a CaptureError."""
    if len(line) > MAX_LINE_BYTES:
        raise CaptureError(
            f"{path}:{n}: not a capture line (longer than {MAX_LINE_BYTES} bytes); "
            f"expected {CAPTURE_FORMAT}"
        )
    text = line.decode(errors="replace")  # a binary file fails as a bad line
    if n == 1:
        text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark (Windows editors)
    if not text.strip():
        return None
    try:
        return _capture_line(text)
    except ValueError as err:
        raise CaptureError(
            f"{path}:{n}: not a capture line ({err}); expected {CAPTURE_FORMAT}"
        ) from err


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
    retransmission), and every test press, is acknowledged over the air,
    while the unit can hear it; routine frames get decoys (amrkit.ack_schedule).
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
            # Until here an alert is only the receiver's: a full disk under
            # the outbox, or an output that fails, leaves it to the next run.
            receiver.handed_over(event)

    publish(receiver.not_handed_over())

    queue: asyncio.Queue[Advert | None] = asyncio.Queue()
    producer = asyncio.create_task(source(queue))
    # A source that ends (a capture's end, or an error) ends the loop at once.
    producer.add_done_callback(lambda _task: queue.put_nowait(None))
    acking = asyncio.create_task(acker.run()) if acker is not None else None
    if duration_s is not None:
        asyncio.get_running_loop().call_later(duration_s, queue.put_nowait, None)
    stopped = False
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
            events = receiver.feed(ad, t, rssi)
            publish(events)
            if acker is not None:
                # Alerts and test presses with their tags (so the unit stops
                # retrying), routine frames with decoys (amrkit.ack_schedule).
                acker.heard(receiver, events)
            if t >= next_check:
                publish(receiver.check_supervision(t))
                next_check = t + SUPERVISION_CHECK_S
        if duration_s is None:
            await producer
    except asyncio.CancelledError:
        # Stopped (Ctrl-C, SIGTERM, amr check once it heard its press): the
        # state is flushed below; queued events wait in the outbox for the
        # next run rather than hold the stop up with a last delivery.
        stopped = True
        raise
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
            # Stopped: a POST in flight (a webhook that does not answer) is
            # not waited for; its event stays queued and is sent again.
            forwarder.join(timeout=STOP_WAIT_S if stopped else 5)
            if outbox is not None and not forwarder.is_alive() and not stopped:
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
    decoys: bool = True,
    duration_s: float | None = None,
) -> None:
    """listen(), acknowledging alerts over the air through bumble on
    `ack_transport` when one is given (bleak cannot advertise), and routine
    frames with decoys unless `decoys` is off."""
    acker = Acker(ack_transport, AckSchedule(decoys=decoys)) if ack_transport else None
    if acker is not None:
        await acker.start()
    try:
        await listen(receiver, source, emit, outbox, acker=acker, duration_s=duration_s)
    finally:
        if acker is not None:
            await acker.close()
