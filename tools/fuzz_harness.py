"""The fuzz targets, shared by the tests (tests/host/test_fuzz_*.py) and the
long campaign (tools/bench_fuzz.py).

Each target takes one input and returns an `Outcome`: "ok" (accepted),
"error" (refused with the documented error; `message` is what it says),
"crash" (anything else: another exception, a broken reply, a record decoded
into something it does not hold) or "hang" (no answer within the per-input
limit). `output` is every word the input made the code under test say
(replies, messages, log lines), which `Secrets` searches for keys.

Firmware targets run in one long-lived unix-port `micropython`
(tests/firmware/fuzz_driver.py) that takes its inputs on stdin, so a
campaign of 100,000 inputs is one process, not 100,000. The seed corpus of
each target is tests/corpus/<target>/.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from amrkit.boards import ProfileError, load_profile
from amrkit.bundle import BundleError, read_bundle
from amrkit.listen import Advert, CaptureError, capture_source
from amrkit.paths import REPO_DIR, firmware_dir, micropython_binary, platform_dir
from amrkit.protocol import (
    MAX_COUNTER,
    Frame,
    FrameError,
    Kind,
    KnownUnit,
    decode,
    derive_keys,
    encode,
    split,
)
from amrkit.receiver import Receiver
from amrkit.twin.factory import TWIN_REGISTRY_SECRET
from amrkit.twin.platform._contract import DIR_ENV, REPL_ENV

CORPUS_DIR = REPO_DIR / "tests" / "corpus"
DRIVER = REPO_DIR / "tests" / "firmware" / "fuzz_driver.py"
MARK = "@@fuzz "
INPUT_LIMIT_S = 5.0  # per input; a sim command may take the sim's own 30 s
# Made, not written out: a fuzzer that draws the constants of this file
# could otherwise send them, and a command that echoes its input is no leak.
BUNDLE_PASSPHRASE = hashlib.sha256(b"fuzz bundle").hexdigest()[:24]
# The units of frame seeds: keys from their own registry secret.
FRAME_SECRET = hashlib.sha256(b"fuzz registry").digest()
FRAME_UNIT = bytes.fromhex("f0220000000000a1")
FRAME_SEED_COUNTERS = range(4)  # frame seeds carry these counters


@dataclass(frozen=True)
class Outcome:
    kind: str  # ok | error | crash | hang
    message: str = ""
    output: str = ""


def ok(output: str = "") -> Outcome:
    return Outcome("ok", "", output)


def error(message: str, output: str = "") -> Outcome:
    return Outcome("error", message, output or message)


def crash(message: str, output: str = "") -> Outcome:
    return Outcome("crash", message, output or message)


# -- secrets -----------------------------------------------------------------


@dataclass
class Secrets:
    """Keys and passphrases that must never appear in anything a target says."""

    raw: list[bytes] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def add_unit(self, unit: KnownUnit) -> None:
        self.raw += [unit.keys.enc, unit.keys.id, unit.keys.ack]

    def words(self) -> list[str]:
        out = list(self.text)
        for secret in self.raw:
            out += [secret.hex(), secret.hex().upper(), secret.decode("latin-1")]
        return out

    def leaked(self, output: str) -> bool:
        return any(word in output for word in self.words())


def secrets_for(*units: KnownUnit) -> Secrets:
    found = Secrets(raw=[TWIN_REGISTRY_SECRET, FRAME_SECRET], text=[BUNDLE_PASSPHRASE])
    for unit in units:
        found.add_unit(unit)
    return found


# -- corpus ------------------------------------------------------------------


def corpus(target: str) -> list[tuple[str, bytes]]:
    """(file name, contents) of every seed of a target, in name order."""
    return [(p.name, p.read_bytes()) for p in sorted((CORPUS_DIR / target).iterdir())]


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    """One to four byte-level mutations: bit flips, random bytes, inserts,
    deletes, interesting values, a splice with another seed."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[at % len(out)] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[at % len(out)] = rng.randrange(256)
        elif op == 2:
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and out:
            del out[at : at + rng.randint(1, 8)]
        elif op == 4 and out:
            out[at % len(out)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF))
        elif op == 5 and seeds:
            other = rng.choice(seeds)
            cut = rng.randrange(len(other) + 1)
            out = out[:at] + other[cut:]
        else:
            out = bytearray(rng.randbytes(rng.randint(0, 2 * len(data) + 8)))
    return bytes(out)


# -- hangs in this process ----------------------------------------------------


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt Python code that runs longer than `seconds` (main thread)."""

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- firmware, in one micropython ---------------------------------------------


class FirmwareDriver:
    """tests/firmware/fuzz_driver.py in one micropython process; restarted
    after an input that ends it or exceeds the limit. `unit_dir`: a twin
    unit's directory, for the targets that touch the chip."""

    def __init__(self, unit_dir: Path | None = None, limit_s: float = INPUT_LIMIT_S) -> None:
        self._unit_dir = unit_dir
        self._limit_s = limit_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self.restarts = 0

    def _start(self) -> subprocess.Popen[bytes]:
        path = [DRIVER.parent, firmware_dir(), platform_dir(), ".frozen"]
        env = {**os.environ, "MICROPYPATH": os.pathsep.join(str(p) for p in path)}
        if self._unit_dir is not None:
            env |= {DIR_ENV: str(self._unit_dir), REPL_ENV: "1"}
        self._buffer = b""
        return subprocess.Popen(
            [micropython_binary(), "-X", "heapsize=4M", str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self._unit_dir or REPO_DIR,
            env=env,
        )

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe is not None:
                    pipe.close()
            self._proc = None

    def __enter__(self) -> FirmwareDriver:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def run(self, *fields: str) -> tuple[str, str, list[str]]:
        """(verdict, detail, lines the firmware printed) for one input line."""
        if self._proc is None:
            self._proc = self._start()
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(" ".join(fields).encode() + b"\n")
            proc.stdin.flush()
        except BrokenPipeError:
            self.close()
            self.restarts += 1
            return "crash", "the firmware process ended", []
        lines: list[str] = []
        deadline = time.monotonic() + self._limit_s
        while True:
            while b"\n" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\n", 1)
                line = raw.decode(errors="replace")
                if line.startswith(MARK):
                    verdict, _, detail = line[len(MARK) :].partition(" ")
                    return verdict, detail, lines
                lines.append(line)
            left = deadline - time.monotonic()
            ready = select.select([proc.stdout], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                self.close()
                self.restarts += 1
                return "hang", f"no answer within {self._limit_s} s", lines
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                self.close()
                self.restarts += 1
                return "crash", "the firmware process ended: " + " | ".join(lines[-3:]), lines
            self._buffer += chunk


def field_hex(data: bytes | None) -> str:
    """A driver field: hex digits, "-" for none, "" never (an empty field
    would vanish in the line's split)."""
    if data is None:
        return "-"
    return data.hex() if data else "="


def _judge_driver(verdict: str, detail: str, lines: list[str]) -> Outcome | None:
    output = "\n".join([*lines, detail])
    if verdict in ("crash", "silent"):
        return crash(detail, output)
    if verdict == "hang":
        return Outcome("hang", detail, output)
    return None


def record_outcome(driver: FirmwareDriver, target: str, *fields: bytes | None) -> Outcome:
    """config, provisioning, state (one payload) or store (kind, two slots)."""
    verdict, detail, lines = driver.run(target, *(field_hex(f) for f in fields))
    judged = _judge_driver(verdict, detail, lines)
    if judged is not None:
        return judged
    output = "\n".join([*lines, detail])
    if lines:
        return crash("the decoder printed: " + lines[0], output)
    if verdict == "fault" and detail:
        return error(detail, output)
    if verdict == "ok":
        return ok(output)
    return crash(f"{verdict} {detail}: not a verdict", output)


def _json_objects(lines: list[str]) -> list[dict[str, Any]] | None:
    out = []
    for line in lines:
        try:
            reply = json.loads(line)
        except ValueError:
            return None
        if not isinstance(reply, dict):
            return None
        out.append(reply)
    return out


def wired_outcome(driver: FirmwareDriver, name: str, arg_hex: str | None) -> Outcome:
    """amr.commands.wired(name, arg_hex) as the raw REPL runs it: one JSON object."""
    verdict, detail, lines = driver.run(
        "wired", field_hex(name.encode()), field_hex(None if arg_hex is None else arg_hex.encode())
    )
    judged = _judge_driver(verdict, detail, lines)
    if judged is not None:
        return judged
    output = "\n".join(lines)
    replies = _json_objects(lines)
    if verdict != "done" or replies is None or len(replies) != 1:
        return crash("not one JSON object: " + output[:200], output)
    message = replies[0].get("error")
    if message is None:
        return ok(output)
    if not isinstance(message, str) or not message:
        return crash(f"error {message!r} is not a message", output)
    return error(message, output)


def gatt_outcome(
    driver: FirmwareDriver, conn: int, handle: int, trusted: bool, value: bytes
) -> Outcome:
    """A host writes `value` to one of the service session's handles (index
    5: the control point; past the table, any handle number). Only a trusted
    host's write to the control point is run, and it gets one reply: JSON in
    chunks of at most 19 bytes after the header byte (index, 0x80 on the last)."""
    verdict, detail, lines = driver.run(
        "gatt", f"{conn:x}", f"{handle:x}", "1" if trusted else "0", field_hex(value)
    )
    judged = _judge_driver(verdict, detail, lines)
    if judged is not None:
        return judged
    output = "\n".join([*lines, detail])
    control, requests, chunks = detail.split()
    expected = 1 if trusted and control == "1" else 0
    if int(requests) != expected:
        return crash(f"{requests} requests from a write expected to make {expected}", output)
    sent = [] if chunks == "-" else [c.split(":") for c in chunks.split(",")]
    if not expected:
        return crash("a reply to a write that is not served", output) if sent else ok(output)
    reply = b""
    for i, (who, _where, data) in enumerate(sent):
        chunk = bytes.fromhex(data)
        last = i == len(sent) - 1
        if int(who, 16) != conn or chunk[0] != (i | (0x80 if last else 0)) or len(chunk) > 20:
            return crash(f"reply chunk {i} is malformed: {data}", output)
        reply += chunk[1:]
    output += "\n" + reply.decode(errors="replace")
    replies = _json_objects([reply.decode(errors="replace")])
    if not replies:
        return crash("the reply is not a JSON object", output)
    message = replies[0].get("error")
    return ok(output) if message is None else error(str(message), output)


def nvs_outcome(driver: FirmwareDriver, slots: list[bytes | None]) -> Outcome:
    """These six slots (p0 p1 s0 s1 b0 b1) in flash, then info and self_test:
    two replies; a unit without a usable provisioning says why and fails its
    self-test (never a silent default)."""
    verdict, detail, lines = driver.run("nvs", *(field_hex(s) for s in slots))
    judged = _judge_driver(verdict, detail, lines)
    if judged is not None:
        return judged
    output = "\n".join(lines)
    replies = _json_objects(lines)
    if verdict != "done" or replies is None or len(replies) != 2:
        return crash("not two JSON objects: " + output[:200], output)
    info, test = replies
    if not info["provisioned"]:
        if info["config"] == "ok" or test["pass"] is not False or not info["keys"]:
            return crash("no usable provisioning, yet nothing says so", output)
        return error(f"config: {info['config']}; keys: {info['keys']}", output)
    state = info["state"]
    if not isinstance(state, dict) and (test["pass"] or test["checks"]["state"] == "ok"):
        return crash("the counter state is unusable, yet the self-test passes", output)
    return ok(output) if isinstance(state, dict) else error(f"state: {state}", output)


# -- host targets --------------------------------------------------------------


def frame_unit() -> KnownUnit:
    return KnownUnit(FRAME_UNIT.hex(), derive_keys(FRAME_SECRET, FRAME_UNIT))


def frame_seed(kind: Kind, counter: int, **fields: int) -> bytes:
    return encode(frame_unit().keys, Frame(kind, counter, **fields))


@dataclass
class FrameTarget:
    """split, decode (at the seeds' counters) and a Receiver's feed of one
    payload. strict: a verified frame that breaks the spec's field rules is
    a crash too."""

    strict: bool = False
    unit: KnownUnit = field(default_factory=frame_unit)
    receiver: Receiver = field(init=False)
    t: float = 0.0

    def __post_init__(self) -> None:
        self.receiver = Receiver([self.unit])

    def __call__(self, ad: bytes) -> Outcome:
        reasons: list[str] = []
        try:
            split(ad)
            for counter in FRAME_SEED_COUNTERS:
                try:
                    frame = decode(self.unit.keys.enc, counter, ad)
                except FrameError as err:
                    reasons.append(err.reason)
                    continue
                problem = frame_spec_problem(frame, ad, self.unit) if self.strict else ""
                if problem:
                    return crash(problem)
            before = sum(self.receiver.stats.values())
            self.t += 1.0
            events = self.receiver.feed(ad, self.t)
        except FrameError as err:
            return error(f"FrameError {err.reason}") if err.reason else crash("no reason")
        except Exception as err:  # the finding
            return crash(f"{type(err).__name__}: {err}")
        if sum(self.receiver.stats.values()) <= before:
            return crash("the receiver counted nothing for a payload")
        if not all(isinstance(e, dict) and "event" in e for e in events):
            return crash(f"events are not events: {events!r}")
        return ok(json.dumps(events)) if events else error("; ".join(sorted(set(reasons))))


def frame_spec_problem(frame: Frame, ad: bytes, unit: KnownUnit) -> str:
    """What a verified frame breaks of protocol section 3.4-3.5, or ""."""
    if frame.counter > MAX_COUNTER:
        return f"counter {frame.counter} above {MAX_COUNTER}"
    if not (frame.battery_pct <= 100 or frame.battery_pct == 255):
        return f"battery {frame.battery_pct} %: 0..100 or 255"
    if frame.flags & ~0x07:
        return f"flags {frame.flags:#x}: bits 3-7 are 0"
    if frame.kind in (Kind.HEARTBEAT, Kind.LOW_BATTERY, Kind.FAULT) and frame.alert_id:
        return f"{frame.kind.name} with alert id {frame.alert_id}: 0 for non-alert kinds"
    if encode(unit.keys, frame) != ad:
        return "the plaintext has what its fields do not say (reserved byte not 0)"
    return ""


@dataclass
class FileTarget:
    """Targets that read a file: each input is written to one path first."""

    directory: Path

    def write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        return path


def bundle_outcome(files: FileTarget, data: bytes) -> Outcome:
    """read_bundle: the units, or a BundleError saying why."""
    path = files.write("bundle.json", data)
    try:
        units = read_bundle(path, BUNDLE_PASSPHRASE)
    except BundleError as err:
        return error(str(err).replace(str(path), "BUNDLE")) if str(err) else crash("no message")
    except Exception as err:  # the finding
        return crash(f"{type(err).__name__}: {err}")
    bad = [u for u in units if not isinstance(u, KnownUnit) or len(u.keys.enc) != 16]
    if bad:
        return crash(f"a bundle gave units that are not units: {len(bad)}")
    return ok(repr(units))


def board_outcome(files: FileTarget, data: bytes, name: str = "esp32c3-coin") -> Outcome:
    """load_profile on a profile file named as the board it describes."""
    path = files.write(f"{name}.toml", data)
    try:
        board = load_profile(path)
    except ProfileError as err:
        text = str(err).replace(str(path), "PROFILE")
        return error(text.splitlines()[-1].split(": ", 1)[-1]) if text else crash("no message")
    except Exception as err:  # the finding
        return crash(f"{type(err).__name__}: {err}")
    return ok(repr(board))


def capture_outcome(files: FileTarget, data: bytes) -> Outcome:
    """capture_source on a capture file: its adverts, or a CaptureError."""
    path = files.write("capture.jsonl", data)
    adverts: list[Advert] = []

    async def read() -> None:
        queue: asyncio.Queue[Advert | None] = asyncio.Queue()
        await capture_source(path)(queue)
        while (item := queue.get_nowait()) is not None:
            adverts.append(item)

    try:
        asyncio.run(read())
    except CaptureError as err:
        text = str(err).replace(str(path), "CAPTURE")
        return error(text.split(" (", 1)[0]) if text else crash("no message")
    except Exception as err:  # the finding
        return crash(f"{type(err).__name__}: {err}")
    for t, ad, rssi in adverts:
        if not isinstance(t, float) or t != t or t in (float("inf"), float("-inf")):
            return crash(f"a capture line gave time {t!r}, not seconds")
        if not isinstance(ad, bytes):
            return crash(f"a capture line gave payload {ad!r}, not bytes")
        if rssi is not None and (not isinstance(rssi, int) or isinstance(rssi, bool)):
            return crash(f"a capture line gave rssi {rssi!r}, not dBm")
    return ok(repr(adverts))


# -- the sim's control port ------------------------------------------------------

# How long the fuzzed sim waits for a unit to sleep before it withdraws a
# power or clock command (Sim's command_timeout_s; 30 s for `amr sim`).
COMMAND_TIMEOUT_S = 0.2


class ControlConnection:
    """One connection to `amr sim`'s control port, kept for many commands."""

    def __init__(self, address: str, limit_s: float = 40.0) -> None:
        self._address = address
        self._limit_s = limit_s
        self._sock: socket.socket | None = None
        self._file: Any = None
        self.reconnects = 0

    def _connect(self) -> None:
        host, _, port = self._address.removeprefix("tcp://").rpartition(":")
        self._sock = socket.create_connection((host, int(port)), timeout=self._limit_s)
        self._file = self._sock.makefile("rb")

    def close(self) -> None:
        if self._sock is not None:
            self._file.close()
            self._sock.close()
            self._sock = None

    def __call__(self, line: bytes) -> Outcome:
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        line = line.replace(b"\n", b" ").replace(b"\r", b" ")
        try:
            self._sock.sendall(line + b"\n")
            answer = self._file.readline()
        except TimeoutError:
            self.close()
            self.reconnects += 1
            return Outcome("hang", f"no answer within {self._limit_s} s")
        except OSError as err:
            answer, text = b"", str(err)
        else:
            text = "closed the connection"
        if not answer.endswith(b"\n"):
            self.close()
            self.reconnects += 1
            return crash(f"the sim {text} on {line[:80]!r}")
        output = answer.decode(errors="replace")
        try:
            reply = json.loads(answer)
        except ValueError:
            return crash("not JSON: " + output[:200], output)
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            return crash("not a reply: " + output[:200], output)
        if reply["ok"]:
            return ok(output)
        message = reply.get("error")
        if not isinstance(message, str) or not message:
            return crash("a refusal without a message", output)
        return error(message, output)


SIM_COMMANDS = (
    "press",
    "taps",
    "service",
    "battery",
    "hang",
    "radio_loss",
    "status",
    "power_cut",
    "power_on",
    "time_jump",
    "soft_reset",
)
_ODD_VALUES: tuple[Any, ...] = (
    None,
    True,
    -1,
    0,
    1,
    2**31,
    2**64,
    10**30,
    -(10**30),
    0.5,
    -0.0,
    1e308,
    "1",
    "",
    "x" * 300,
    [],
    [1],
    {},
    {"a": 1},
)
ODD_JSON = ("NaN", "Infinity", "-Infinity", "1e999", "-1e999")


def control_line(rng: random.Random, units: list[str], seeds: list[bytes]) -> bytes:
    """A control line: a command with odd values, a mutated seed, or noise."""
    pick = rng.randrange(10)
    if pick < 6:
        command: dict[str, Any] = {}
        if rng.randrange(8):
            command["cmd"] = (
                rng.choice(SIM_COMMANDS) if rng.randrange(6) else rng.choice(_ODD_VALUES)
            )
        if rng.randrange(8):
            command["unit"] = rng.choice(units) if rng.randrange(4) else rng.choice(_ODD_VALUES)
        for key in rng.sample(
            [
                "mv",
                "resistance_ohm",
                "ms",
                "in_ms",
                "p",
                "seed",
                "count",
                "duration_ms",
                "bounce",
                "at_next_write",
                "extra",
            ],
            rng.randint(0, 3),
        ):
            command[key] = rng.choice(_ODD_VALUES)
        text = json.dumps(command)
        if rng.randrange(4) == 0:  # a value JSON has no word for, as Python's json reads it
            text = text.replace("null", rng.choice(ODD_JSON), 1)
        return text.encode()
    if pick < 9 and seeds:
        return mutate(rng, rng.choice(seeds), seeds)
    return rng.randbytes(rng.randint(0, 64))


def unit_dir_for_firmware(directory: Path) -> tuple[Path, KnownUnit]:
    """A provisioned twin unit's directory, for the firmware driver."""
    from amrkit.boards import load_board
    from amrkit.twin.factory import provision
    from amrkit.twin.unit import VirtualUnit

    unit = VirtualUnit(directory, load_board())
    known = provision(unit)
    return unit.directory, known


def scratch() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="amr-fuzz-")


# -- structured seeds ------------------------------------------------------------


def wired_input(data: bytes) -> tuple[str, str | None]:
    """A wired seed: {"name": ..., "arg_hex": ... or null}."""
    seed = json.loads(data)
    return str(seed["name"]), None if seed["arg_hex"] is None else str(seed["arg_hex"])


def slots_input(data: bytes) -> list[bytes | None]:
    """A store or nvs seed's slots: hex each, or null."""
    return [None if s is None else bytes.fromhex(s) for s in json.loads(data)["slots"]]


def mutate_text(rng: random.Random, text: str, seeds: list[bytes]) -> str:
    return mutate(rng, text.encode(), seeds).decode(errors="replace")


def mutate_toml(rng: random.Random, text: str) -> str:
    """Line-level mutations of a profile: a value replaced by an odd one, a
    line dropped or repeated, a table header renamed."""
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        if not lines:
            break
        i = rng.randrange(len(lines))
        op = rng.randrange(5)
        if op < 3 and "=" in lines[i]:
            key, _, value = lines[i].partition("=")
            odd = rng.choice(TOML_VALUES)
            if "value =" in value and rng.randrange(2):
                lines[i] = f'{key}= {{ value = {odd}, source = "ESTIMATE: fuzz" }}'
            else:
                lines[i] = f"{key}= {odd}"
        elif op == 3:
            del lines[i]
        else:
            lines.insert(rng.randrange(len(lines) + 1), lines[i])
    return "\n".join(lines) + "\n"


TOML_VALUES = (
    "0",
    "-1",
    "1",
    "25",
    "99999999999999999999",
    "-9223372036854775808",
    "1e309",
    "nan",
    "inf",
    "-inf",
    "0.0",
    "true",
    '""',
    '"frozen"',
    '"esp32c3-coin"',
    '"ESP32-C9"',
    "[]",
    "[1, 2]",
    "{}",
    '{ value = 1, source = "x" }',
    '{ value = "1", source = "ESTIMATE: fuzz" }',
    "1979-05-27T07:32:00Z",
)


# -- tallies and the twin's links -------------------------------------------------

KEEP = 3  # examples kept of each crash, hang or leak, for the corpus
WIRED_NAMES = (
    "info",
    "battery",
    "diagnostics",
    "self_test",
    "clear_diagnostics",
    "challenge",
    "provision",
    "wipe",
    "test_mode",
    "service",
    "bonds",
    "clear_bonds",
)


class Tally:
    """What one target's campaign found."""

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets
        self.inputs = 0
        self.errors: set[str] = set()
        self.crashes: list[str] = []
        self.hangs: list[str] = []
        self.leaks: list[str] = []
        self.crash_count = 0
        self.hang_count = 0
        self._started = time.monotonic()

    def add(self, what: str, outcome: Outcome) -> None:
        self.inputs += 1
        if outcome.kind == "error":
            self.errors.add(outcome.message)
        elif outcome.kind == "crash":
            self.crash_count += 1
            if len(self.crashes) < KEEP:
                self.crashes.append(f"{outcome.message[:200]} <- {what[:300]}")
        elif outcome.kind == "hang":
            self.hang_count += 1
            if len(self.hangs) < KEEP:
                self.hangs.append(what[:400])
        if self.secrets.leaked(outcome.output) and len(self.leaks) < KEEP:
            self.leaks.append(what[:400])

    def result(self) -> dict[str, Any]:
        seconds = time.monotonic() - self._started
        return {
            "inputs": self.inputs,
            "distinct_errors": len(self.errors),
            "crashes": self.crash_count,
            "hangs": self.hang_count,
            "inputs_per_s": round(self.inputs / seconds, 1) if seconds else None,
            "secret_seen": bool(self.leaks),
            "crash_examples": self.crashes,
            "hang_examples": self.hangs,
            "leak_examples": self.leaks,
        }


def sim_alive(sim: Any) -> bool:
    """Every unit's thread still runs and answers status on a new connection."""
    from amrkit.twin.control import send

    if not all(u._thread.is_alive() for u in sim.units.values()):
        return False
    reply = send(sim.control.removeprefix("tcp://"), {"cmd": "status"}, timeout_s=30)
    return bool(reply.get("ok")) and len(reply["units"]) == len(sim.units)


def reply_outcome(reply: dict[str, Any]) -> Outcome:
    output = json.dumps(reply)
    message = reply.get("error")
    if message is None:
        return ok(output)
    return error(str(message), output) if message else crash("an empty error", output)


async def serial_outcome(link: Any, name: str, arg: bytes | None) -> Outcome:
    """One command through WiredLink (the raw REPL over the unit's serial port)."""
    from amrkit.unit import UnitError

    try:
        return reply_outcome(await link.command(name, arg))
    except UnitError as err:
        return error(str(err).split(": ", 1)[0], str(err))
    except Exception as err:  # the finding
        return crash(f"{type(err).__name__}: {err}")


def serial_arg(rng: random.Random, arg_hex: str | None) -> bytes | None:
    """WiredLink sends bytes (as hex): a seed's argument, or random bytes."""
    if arg_hex is None:
        return None
    try:
        return bytes.fromhex(arg_hex)
    except ValueError:
        return rng.randbytes(len(arg_hex) // 2)


async def serial_campaign(
    sim: Any, unit: str, seeds: list[tuple[str, str | None]], count: int, secrets: Secrets
) -> dict[str, Any]:
    """Wired commands over a twin unit's serial port, in one raw-REPL session."""
    from amrkit.unit.wired import WiredLink

    rng = random.Random(count)
    tally = Tally(secrets)
    async with WiredLink(str(sim.units[unit].announce()["serial"])) as link:
        for _ in range(count):
            name, arg_hex = rng.choice(seeds)
            arg = serial_arg(rng, arg_hex)
            if rng.randrange(2):
                name = mutate_text(rng, name, [])
            elif arg is not None:
                arg = mutate(rng, arg, [])
            tally.add(f"{name!r} {arg!r}", await serial_outcome(link, name, arg))
        after = await serial_outcome(link, "info", None)
    result = tally.result()
    result["answers_after"] = after.kind == "ok"
    return result


async def radio_write(link: Any, data: bytes) -> Outcome:
    """Raw bytes to the control point of a unit in service mode (a BleLink
    that paired); its reply, reassembled as BleLink does."""
    from bleak.exc import BleakError

    from amrkit.contract import CONTROL_POINT_UUID
    from amrkit.unit import UnitError, decode_reply

    link._reply, link._next = bytearray(), 0
    link._done = asyncio.get_running_loop().create_future()
    try:
        await link._client.write_gatt_char(CONTROL_POINT_UUID, data, response=True)
    except BleakError as err:  # refused by the stack (an attribute too long)
        return error(f"refused by the stack: {err}")
    try:
        reply = decode_reply("unit", "write", await asyncio.wait_for(link._done, 15))
    except (TimeoutError, UnitError) as err:
        return crash(f"no reply: {err}")
    return reply_outcome(reply)


async def radio_campaign(
    sim: Any, unit: str, seeds: list[bytes], count: int, secrets: Secrets
) -> dict[str, Any]:
    """Writes to the control point over the twin's radio, in one session:
    the seeds first, then mutations of them."""
    from amrkit.twin.control import send
    from amrkit.unit.ble import BleLink

    known = sim.units[unit].known
    rng = random.Random(count)
    tally = Tally(secrets)
    send(sim.control.removeprefix("tcp://"), {"cmd": "service", "unit": unit}, timeout_s=30)
    async with BleLink([known], sim.ble) as link:
        for i in range(count):
            data = seeds[i] if i < len(seeds) else mutate(rng, rng.choice(seeds), seeds)[:512]
            tally.add(data.hex(), await radio_write(link, data))
        after = await radio_write(link, b"info")
    result = tally.result()
    result["answers_after"] = after.kind == "ok"
    return result
