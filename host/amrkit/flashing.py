"""The flash workflow: a MicroPython image and the app onto units, verified.

For each port (several in parallel, one thread each):

1. the image's header names the chip it was built for: an image for another
   chip than the board's is refused before any port is opened;
2. if the unit already runs an app, its version is read from its
   ``/release.json``; an older app than that is refused unless forced;
3. esptool's library API detects the chip (refused, nothing written, if it is
   not the image's), runs its flasher stub, writes the image compressed and
   verified by MD5, and hard-resets the unit into MicroPython;
4. the app bundle (`amr build`) goes over mpremote's transport (the raw REPL,
   no subprocess), then the unit hashes every file it holds (SHA-256 on the
   unit) and the hashes must equal the release manifest's; the manifest goes
   to the unit as ``/release.json``.

Callers (the CLI, the registry, `amr check`) get a ``FlashResult`` per port:
chip, MAC, image SHA-256, app hash and version, or a ``FlashError`` whose
``kind`` says what went wrong ("input": the image does not fit the unit;
"unit": the port or the unit; "older": the app on the unit is newer;
"verify": what is on the unit differs from the release).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import serial  # type: ignore[import-untyped]
from esptool.cmds import (  # type: ignore[import-untyped]
    attach_flash,
    detect_chip,
    reset_chip,
    run_stub,
    write_flash,
)
from esptool.loader import DEFAULT_TIMEOUT  # type: ignore[import-untyped]
from esptool.reset import HardReset  # type: ignore[import-untyped]
from esptool.util import FatalError  # type: ignore[import-untyped]
from mpremote.transport import TransportError  # type: ignore[import-untyped]
from mpremote.transport_serial import SerialTransport  # type: ignore[import-untyped]

from amrkit.esp_image import ImageError, read_header
from amrkit.release import (
    RELEASE_FILE,
    app_hash,
    read_release_manifest,
    release_manifest,
    version_key,
)
from amrkit.unit.wired import hand_back, not_handed_back

__all__ = [
    "FlashError",
    "FlashResult",
    "Progress",
    "app_hash_on_unit",
    "check_image",
    "flash_unit",
    "flash_units",
    "release_manifest",
    "unit_files_on_unit",
]

IMAGE_OFFSET = 0x0  # MicroPython's firmware.bin for the C3 starts with the bootloader
BOOT_WAIT_S = 10.0  # from the hard reset until MicroPython's REPL answers
WRITE_CHUNK = 2048  # bytes per raw-REPL write when deploying

# Progress callback: (port, stage, fraction of the whole job done 0..1).
Progress = Callable[[str, str, float], None]


# Asked with a unit's MAC before anything is written: None, or why not.
Admit = Callable[[str], str | None]


class FlashError(Exception):
    """A port's flash failed; ``kind`` is "input", "unit", "older", "verify" or
    "refused" (the registry would not have the unit overwritten)."""

    def __init__(self, port: str, kind: str, message: str) -> None:
        super().__init__(message)
        self.port = port
        self.kind = kind


@dataclass(frozen=True)
class FlashResult:
    port: str
    chip: str
    mac: str
    image_sha256: str
    app_hash: str
    version: str
    seconds: float
    unit_id: str | None = None  # the registry's id for the unit, once recorded

    def as_dict(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "unit_id": self.unit_id,
            "chip": self.chip,
            "mac": self.mac,
            "image_sha256": self.image_sha256,
            "app_hash": self.app_hash,
            "version": self.version,
            "seconds": round(self.seconds, 2),
        }


log = logging.getLogger("amrkit.flashing")


def check_image(image: bytes, chip: str, where: str = "the board") -> str:
    """The image's chip name; FlashError("input") unless it is ``chip``."""
    try:
        header = read_header(image)
    except ImageError as err:
        raise FlashError(where, "input", f"not a MicroPython image: {err}") from err
    if header.chip is None or header.chip.name != chip:
        raise FlashError(
            where,
            "input",
            f"the image is built for {header.chip_name}, {where} is an {chip}: "
            "nothing was written; use the image for its chip",
        )
    return header.chip.name


# -- the unit's filesystem over the raw REPL ----------------------------------

_HASH_SCRIPT = """\
import os, hashlib, binascii, json
def _amr_walk(d, out):
    for e in os.ilistdir(d or '/'):
        p = d + '/' + e[0]
        if e[1] & 0x4000:
            _amr_walk(p, out)
        elif p != '/RELEASE_FILE':
            h = hashlib.sha256()
            with open(p, 'rb') as f:
                while True:
                    b = f.read(1024)
                    if not b:
                        break
                    h.update(b)
            out[p[1:]] = binascii.hexlify(h.digest()).decode()
    return out
print(json.dumps(_amr_walk('', {})))
""".replace("RELEASE_FILE", RELEASE_FILE)


def _open_transport(port: str, timeout: float = 10.0) -> Any:
    try:
        transport = SerialTransport(port, baudrate=115200, timeout=timeout)
    except Exception as err:  # TransportError or serial's errors
        raise FlashError(port, "unit", _port_problem(port, err)) from err
    return transport


def _enter_raw(port: str, transport: Any, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            transport.enter_raw_repl(soft_reset=False, timeout_overall=2)
            return
        except TransportError as err:
            if time.monotonic() >= deadline:
                raise FlashError(
                    port,
                    "unit",
                    f"{port}: MicroPython does not answer ({err}); is the image a MicroPython "
                    "build for this board?",
                ) from err


def unit_files_on_unit(transport: Any) -> dict[str, str]:
    """SHA-256 of every file on the unit (computed there) but its release.json."""
    output = transport.exec(_HASH_SCRIPT)
    text = output.decode() if isinstance(output, bytes) else str(output)
    files: dict[str, str] = json.loads(text.strip() or "{}")
    return files


def app_hash_on_unit(transport_or_port: Any) -> str:
    """The app hash (amrkit.release.app_hash) of the files on a unit, hashed on
    the unit. Takes an mpremote transport already in the raw REPL, or a port."""
    if not isinstance(transport_or_port, str):
        return app_hash(unit_files_on_unit(transport_or_port))
    port = transport_or_port
    transport = _open_transport(port)
    try:
        _enter_raw(port, transport, 2.0)
        return app_hash(unit_files_on_unit(transport))
    finally:
        _hand_back(port, transport)


def _read_unit_release(transport: Any) -> dict[str, Any] | None:
    try:
        data = transport.fs_readfile("/" + RELEASE_FILE)
    except (OSError, TransportError):
        return None
    try:
        release: dict[str, Any] = json.loads(bytes(data).decode())
    except ValueError:
        return None
    return release


def _hand_back(port: str, transport: Any) -> None:
    """End a session that interrupted the app (no reset follows): the unit
    runs its app again (amrkit.unit.wired.hand_back), or a warning says not."""
    try:
        problem = hand_back(transport)
        if problem is not None:
            log.warning(not_handed_back(port, problem))
    finally:
        with contextlib.suppress(Exception):
            transport.close()


def _close(transport: Any) -> None:
    with contextlib.suppress(Exception):
        transport.exit_raw_repl()
    with contextlib.suppress(Exception):
        transport.close()


def _port_problem(port: str, err: BaseException) -> str:
    text = str(err)
    missing = "://" not in port and not Path(port).exists()
    if missing or "No such file" in text or "Errno 2" in text:
        return f"{port} does not exist: check the port name (amr flash without --port lists units)"
    if "busy" in text.lower() or "Errno 16" in text or "exclusive" in text.lower():
        return f"{port} is busy: another program (a terminal, mpremote, esptool) has it open"
    if "Connection refused" in text:
        return f"{port}: nothing is listening there (is the twin running?)"
    return f"{port}: cannot open the port ({text}); is it in use by another program?"


# -- one unit ---------------------------------------------------------------------


def _deploy(
    port: str,
    transport: Any,
    app_dir: Path,
    manifest: dict[str, Any],
    step: Callable[[str, float], None],
) -> None:
    files = sorted(manifest["files"])
    dirs = sorted({str(Path(f).parent) for f in files if "/" in f}, key=len)
    for d in dirs:
        with contextlib.suppress(OSError, TransportError):
            transport.fs_mkdir("/" + d)  # exists already: fine
    total = sum((app_dir / f).stat().st_size for f in files) or 1
    done = 0
    for f in files:
        data = (app_dir / f).read_bytes()
        transport.fs_writefile("/" + f, data, chunk_size=WRITE_CHUNK)
        done += len(data)
        step(f"deploy {f}", done / total)
    # Files of an older release that this one no longer has would change the
    # app hash: remove them.
    for extra in set(unit_files_on_unit(transport)) - set(files):
        with contextlib.suppress(OSError, TransportError):
            transport.fs_rmfile("/" + extra)


def flash_unit(
    port: str,
    image: bytes,
    app_dir: Path,
    chip: str,
    force: bool = False,
    progress: Progress | None = None,
    admit: Admit | None = None,
) -> FlashResult:
    """Flash one unit (see the module doc); FlashError on any failure.
    `admit(mac)`, asked before anything is written, may refuse the unit
    (the registry: an issued unit is not overwritten)."""
    started = time.monotonic()

    def step(stage: str, fraction: float) -> None:
        if progress is not None:
            progress(port, stage, fraction)

    check_image(image, chip)
    manifest = read_release_manifest(app_dir)
    image_sha = hashlib.sha256(image).hexdigest()

    # 1. The app on the unit, if any: a newer one is not replaced unless forced.
    step("reading the app on the unit", 0.02)
    _check_not_older(port, manifest["version"], force)

    # 2. The image, through esptool's library API and its stub.
    step("connecting to the ROM loader", 0.05)
    try:
        raw = serial.serial_for_url(port, timeout=DEFAULT_TIMEOUT, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as err:
        raise FlashError(port, "unit", _port_problem(port, err)) from err
    try:
        try:
            esp = detect_chip(raw)
        except FatalError as err:
            raise FlashError(
                port,
                "unit",
                f"{port}: the unit does not answer in download mode ({err}); "
                "check the cable, or hold BOOT while plugging it in",
            ) from err
        unit_chip = str(esp.CHIP_NAME)
        if unit_chip != chip:
            raise FlashError(
                port,
                "input",
                f"the image is built for {chip}, the unit on {port} is an {unit_chip}: "
                "nothing was written",
            )
        mac = ":".join(f"{b:02x}" for b in esp.read_mac())
        refusal = admit(mac) if admit is not None else None
        if refusal is not None:
            raise FlashError(port, "refused", f"{port}: {refusal}; nothing was written")
        step("running esptool's flasher stub", 0.1)
        stub = run_stub(esp)
        attach_flash(stub)
        step("writing the image", 0.15)
        write_flash(stub, [(IMAGE_OFFSET, image)], compress=True, no_progress=True)
        step("image written and verified; resetting", 0.5)
        reset_chip(stub, "hard-reset")
    except FatalError as err:
        raise FlashError(port, "unit", f"{port}: esptool failed: {err}") from err
    finally:
        raw.close()

    # 3. The app, over the raw REPL, verified by hashes computed on the unit.
    step("waiting for MicroPython", 0.55)
    transport = _open_transport(port)
    try:
        _enter_raw(port, transport, BOOT_WAIT_S)
        _deploy(port, transport, app_dir, manifest, lambda s, f: step(s, 0.55 + 0.35 * f))
        step("verifying on the unit", 0.92)
        on_unit = unit_files_on_unit(transport)
        _verify(port, on_unit, manifest)
        transport.fs_writefile(
            "/" + RELEASE_FILE, json.dumps(manifest, sort_keys=True).encode(), WRITE_CHUNK
        )
        unit_hash = app_hash(on_unit)
    except TransportError as err:
        raise FlashError(port, "unit", f"{port}: the unit stopped answering: {err}") from err
    finally:
        _close(transport)
    # 4. A reset (EN, as esptool pulses it): the unit leaves the REPL and runs
    # the new app; left at the prompt it would never sleep and drain its cell.
    step("resetting into the app", 0.97)
    _reset(port)
    step("done", 1.0)
    return FlashResult(
        port, chip, mac, image_sha, unit_hash, manifest["version"], time.monotonic() - started
    )


def _reset(port: str) -> None:
    try:
        raw = serial.serial_for_url(port, timeout=DEFAULT_TIMEOUT, exclusive=True, do_not_open=True)
        # Both lines released before opening: with DTR asserted, the usual
        # two-transistor auto-reset circuit would not pull EN low for RTS.
        raw.dtr = raw.rts = False
        raw.open()
    except (serial.SerialException, OSError, ValueError) as err:
        raise FlashError(port, "unit", _port_problem(port, err)) from err
    try:
        HardReset(raw)()
    finally:
        raw.close()


def _verify(port: str, on_unit: dict[str, str], manifest: dict[str, Any]) -> None:
    expected: dict[str, str] = manifest["files"]
    wrong = sorted(f for f in expected if on_unit.get(f) != expected[f])
    extra = sorted(set(on_unit) - set(expected))
    if wrong or extra:
        parts = []
        if wrong:
            parts.append("differ from the release: " + ", ".join(wrong))
        if extra:
            parts.append("not in the release: " + ", ".join(extra))
        raise FlashError(
            port, "verify", f"{port}: files on the unit {'; '.join(parts)}; flash it again"
        )


def _check_not_older(port: str, version: str, force: bool) -> None:
    """Read /release.json on the unit (if MicroPython answers) and refuse a downgrade."""
    try:
        transport = SerialTransport(port, baudrate=115200, timeout=2)
    except Exception as err:
        raise FlashError(port, "unit", _port_problem(port, err)) from err
    try:
        transport.enter_raw_repl(soft_reset=False, timeout_overall=2)
    except TransportError:
        # No MicroPython answering (blank, or in the loader): nothing to keep,
        # and no app to hand back.
        _close(transport)
        return
    try:
        release = _read_unit_release(transport)
    finally:
        _hand_back(port, transport)  # a refused downgrade leaves the app running
    if release is None or force:
        return
    on_unit = str(release.get("version", ""))
    if on_unit and version_key(version) < version_key(on_unit):
        raise FlashError(
            port,
            "older",
            f"{port} runs app {on_unit}, newer than {version}: nothing was written; "
            "pass --force to downgrade it",
        )


_WORKER = "amr-flash"


class _WorkerSilencer(io.TextIOBase):
    """sys.stdout while workers run: their writes are dropped, others' pass."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def write(self, text: str) -> int:
        if threading.current_thread().name.startswith(_WORKER):
            return len(text)
        written: int = self._real.write(text)
        return written

    def flush(self) -> None:
        self._real.flush()


def quiet_esptool() -> None:
    """esptool's library API prints its progress; the workflow reports its own."""
    from esptool.logger import log  # type: ignore[import-untyped]

    log.set_verbosity("silent")


# -- several units ------------------------------------------------------------------


def flash_units(
    ports: Sequence[str],
    image: bytes,
    app_dir: Path,
    chip: str,
    force: bool = False,
    progress: Progress | None = None,
    admit: Admit | None = None,
) -> dict[str, FlashResult | FlashError]:
    """Flash every port in parallel (a thread each); the outcome per port."""
    check_image(image, chip)  # refused before any port is touched
    quiet_esptool()
    lock = threading.Lock()

    def report(port: str, stage: str, fraction: float) -> None:
        if progress is not None:
            with lock:
                progress(port, stage, fraction)

    def one(port: str) -> FlashResult | FlashError:
        try:
            return flash_unit(port, image, app_dir, chip, force, report, admit)
        except FlashError as err:
            return err
        except Exception as err:  # an unexpected failure stays with its port
            return FlashError(port, "unit", f"{port}: {type(err).__name__}: {err}")

    # mpremote prints what it got when a unit does not enter the raw REPL;
    # contextlib.redirect_stdout swaps a global, which threads would tangle,
    # so the workers' prints are dropped by thread name instead.
    real_stdout = sys.stdout
    sys.stdout = _WorkerSilencer(real_stdout)
    try:
        with ThreadPoolExecutor(max_workers=max(1, len(ports)), thread_name_prefix=_WORKER) as pool:
            outcomes = list(pool.map(one, ports))
    finally:
        sys.stdout = real_stdout
    return dict(zip(ports, outcomes, strict=True))
