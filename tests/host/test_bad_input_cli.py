"""Bad files and options given to `amr listen` and `amr bundle`, run as a
user runs them (a subprocess): each ends in a message naming what is wrong
and a documented exit code, never a traceback; a capture from a FIFO is
followed line by line, and Ctrl-C or SIGTERM stop the listener at once with
its state saved.

The bad files are a corpus, tests/corpus/{bundle,capture}/, one file a
case, each directory's expected.json giving every file's exit code
(tests/corpus/make_corpus.py writes them)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import resource
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from amrkit.cli import EXIT_INPUT, EXIT_KEYS
from amrkit.cli.common import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_PIPE,
    EXIT_TERMINATED,
    json_line,
)
from amrkit.receiver import Receiver

AMR = str(Path(sys.executable).parent / "amr")
CORPUS = Path(__file__).resolve().parents[1] / "corpus"
STOP_S = 5.0  # a stopped listener has exited within this


def _load_corpus_maker() -> Any:
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


maker = _load_corpus_maker()


def expected(directory: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CORPUS / directory / "expected.json").read_text())
    return loaded


BUNDLES = expected("bundle")
CAPTURES = expected("capture")
GOOD_BUNDLE = (CORPUS / "capture" / CAPTURES["bundle"]).resolve()


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "AMR_BUNDLE_PASSPHRASE": maker.PASSPHRASE, **extra}


def amr(*args: str, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [AMR, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=kwargs.pop("env", None) or env(),
        check=False,
        **kwargs,
    )
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result


def strict_json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` as RFC 8259 JSON: NaN and Infinity are refused."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON: {text!r}")

    return [json.loads(line, parse_constant=refuse) for line in text.splitlines() if line]


def listen(
    tmp: Path, bundle: Path, capture: Path, *options: str, state: Path | None = None
) -> subprocess.CompletedProcess[str]:
    state = state or tmp / f"{capture.name}.{bundle.name}.sqlite"
    return amr(
        "listen", "--bundle", str(bundle), "--capture", str(capture), "--state", str(state),
        "--json", *options,
    )  # fmt: skip


# --- the corpus -----------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, str], subprocess.CompletedProcess[str]]:
    """Every corpus file through `amr listen`, a few at a time."""
    tmp = tmp_path_factory.mktemp("corpus")
    empty = tmp / "empty.jsonl"
    empty.write_text("")
    jobs = {("bundle", name): (CORPUS / "bundle" / name, empty) for name in BUNDLES["exit_codes"]}
    jobs |= {
        ("capture", name): (GOOD_BUNDLE, CORPUS / "capture" / name)
        for name in CAPTURES["exit_codes"]
    }
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {case: pool.submit(listen, tmp, *files) for case, files in jobs.items()}
        return {case: future.result() for case, future in futures.items()}


def test_the_corpus_documents_what_it_holds() -> None:
    for directory, table in (("bundle", BUNDLES), ("capture", CAPTURES)):
        files = {p.name for p in (CORPUS / directory).iterdir()} - {"expected.json"}
        assert files == set(table["exit_codes"]), directory
        assert set(table["exit_codes"].values()) <= set(EXIT_CODES)


@pytest.mark.parametrize("name", sorted(BUNDLES["exit_codes"]))
def test_a_corpus_bundle(
    name: str, corpus_runs: dict[tuple[str, str], subprocess.CompletedProcess[str]]
) -> None:
    result = corpus_runs["bundle", name]
    code = BUNDLES["exit_codes"][name]
    assert result.returncode == code, result.stderr
    strict_json_lines(result.stdout)
    if code:
        assert f"{CORPUS / 'bundle' / name}" in result.stderr, result.stderr
        # What to do: export it again, or give the right passphrase.
        assert "amr bundle export" in result.stderr or "passphrase" in result.stderr


@pytest.mark.parametrize("name", sorted(CAPTURES["exit_codes"]))
def test_a_corpus_capture(
    name: str, corpus_runs: dict[tuple[str, str], subprocess.CompletedProcess[str]]
) -> None:
    result = corpus_runs["capture", name]
    code = CAPTURES["exit_codes"][name]
    assert result.returncode == code, result.stderr
    strict_json_lines(result.stdout)  # a NaN or infinite time never goes out
    if code:
        # The file and the line, and the form a line takes.
        assert f"{CORPUS / 'capture' / name}:" in result.stderr, result.stderr
        assert '"t": seconds' in result.stderr


def test_good_lines_before_a_bad_one_are_reported(
    corpus_runs: dict[tuple[str, str], subprocess.CompletedProcess[str]],
) -> None:
    for name in ("good-then-nan.jsonl", "good-then-garbage.jsonl"):
        result = corpus_runs["capture", name]
        assert [e["event"] for e in strict_json_lines(result.stdout)] == ["heartbeat"]
        assert f"{name}:2: not a capture line" in result.stderr
    nan = corpus_runs["capture", "t-nan.jsonl"]
    assert "t must be a finite number of seconds" in nan.stderr
    good = corpus_runs["capture", "good.jsonl"]
    assert [e["event"] for e in strict_json_lines(good.stdout)] == ["heartbeat", "alert"] + [
        "heartbeat"
    ]


# --- bundles --------------------------------------------------------------------


def test_a_huge_scrypt_cost_is_refused_before_any_work() -> None:
    """n = 2**40 would ask scrypt for a terabyte; it is refused at once, in
    a process that could not have had even a gigabyte."""

    def one_gigabyte() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    for name in ("scrypt-n-huge.bundle", "scrypt-r-huge.bundle", "scrypt-p-huge.bundle"):
        start = time.monotonic()
        result = amr(
            "listen", "--bundle", str(CORPUS / "bundle" / name), "--capture", "/dev/null",
            preexec_fn=one_gigabyte,
        )  # fmt: skip
        assert result.returncode == EXIT_KEYS, result.stderr
        assert time.monotonic() - start < 10
        assert "the scrypt" in result.stderr and "must be" in result.stderr


def test_every_verb_that_reads_a_bundle_refuses_a_damaged_one(tmp_path: Path) -> None:
    bad = CORPUS / "bundle" / "scrypt-n-not-power-of-two.bundle"
    for verb in (
        ["info", "--transport", "foo:1", "--bundle", str(bad)],
        ["pair", "--transport", "foo:1", "--bundle", str(bad), "--timeout", "1"],
        ["listen", "--bundle", str(bad), "--capture", "/dev/null"],
    ):
        result = amr(*verb, env=env(HOME=str(tmp_path)))
        assert result.returncode == EXIT_KEYS, (verb, result.stderr)
        assert f"{bad} is a damaged receiver bundle" in result.stderr
        assert "power of two" in result.stderr and "amr bundle export" in result.stderr
    for path, words in ((tmp_path, "is a directory"), (tmp_path / "none", "no bundle at")):
        result = amr("listen", "--bundle", str(path), "--capture", "/dev/null")
        assert result.returncode == EXIT_KEYS and words in result.stderr, result.stderr


def test_bundle_export_never_replaces_a_device_or_fifo(tmp_path: Path) -> None:
    from amrkit.protocol import derive_keys
    from amrkit.registry import MasterKey, Registry, State

    master = MasterKey.generate()
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    unit = "0011223344556677"
    with Registry.open(url, master, create=True) as registry:
        with registry.step("t", "add", unit) as tx:
            tx.add_unit("esp32c3-coin", "esp32c3", "aa:bb:cc:dd:ee:01")
        with registry.step("t", "flash", unit) as tx:
            tx.record_app("1.0.0", "sha256:abc")
            tx.transition(State.FLASHED)
        with registry.step("t", "provision", unit) as tx:
            keys = derive_keys(b"k" * 32, bytes.fromhex(unit))
            tx.store_keys(tx.next_generation(), keys, heartbeat_s=600)
            tx.transition(State.PROVISIONED)
    fifo = tmp_path / "rx.bundle"
    os.mkfifo(fifo)
    export = ["bundle", "export", "--unit", unit, "--receiver", "RX-01", "--registry", url]
    keyed = env(AMR_MASTER_KEY=master.secret.hex(), AMR_ACTOR="t")
    result = amr(*export, "--out", str(fifo), env=keyed)
    assert result.returncode == EXIT_INPUT, result.stderr
    assert f"cannot write {fifo}: not a regular file" in result.stderr
    assert fifo.is_fifo()
    # Nothing was recorded: the same receiver or another may still get the keys.
    result = amr(*export, "--out", str(tmp_path / "ok.bundle"), "--json", env=keyed)
    assert result.returncode == 0, result.stderr
    assert strict_json_lines(result.stdout)[0]["units"] == [unit]


# --- state, outbox, names and options --------------------------------------------


def test_state_and_outbox_files_that_cannot_be_used(tmp_path: Path) -> None:
    capture = CORPUS / "capture" / "good.jsonl"
    fifo = tmp_path / "state.fifo"
    os.mkfifo(fifo)
    not_sqlite = tmp_path / "capture.jsonl"
    not_sqlite.write_bytes(capture.read_bytes())
    foreign = tmp_path / "foreign.sqlite"  # another program's database, an alerts table unlike ours
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE alerts (x)")
    damaged = tmp_path / "damaged.sqlite"  # a receiver's state, a page overwritten
    Receiver([], damaged).close()
    raw = bytearray(damaged.read_bytes())
    raw[4096:8192] = b"\xff" * 4096
    damaged.write_bytes(raw)
    cases = [
        (tmp_path, "a directory"),
        (tmp_path / "no" / "such" / "rx.sqlite", "no folder"),
        (not_sqlite, "file is not a database"),
        (fifo, "not a regular file"),
        (damaged, "malformed"),
        (foreign, "failed while listening"),
        (Path("/dev/null"), "not a regular file"),
    ]
    for state, words in cases:
        result = amr(
            "listen", "--bundle", str(GOOD_BUNDLE), "--capture", str(capture),
            "--state", str(state), "--json",
        )  # fmt: skip
        assert result.returncode == EXIT_INPUT, (state, result.stderr)
        assert f"{state}" in result.stderr and "--state" in result.stderr
        assert words in result.stderr, (state, result.stderr)
        assert fifo.is_fifo() and Path("/dev/null").is_char_device()
    for outbox, words in ((tmp_path, "a directory"), (not_sqlite, "file is not a database")):
        result = amr(
            "listen", "--bundle", str(GOOD_BUNDLE), "--capture", str(capture),
            "--state", str(tmp_path / "rx.sqlite"), "--webhook", "http://127.0.0.1:9/",
            "--outbox", str(outbox),
        )  # fmt: skip
        assert result.returncode == EXIT_INPUT, result.stderr
        assert f"cannot use {outbox} as the --outbox file ({words})" in result.stderr


def test_names_files_that_cannot_be_read(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' * 5000)
    unlabelled = tmp_path / "names.txt"
    unlabelled.write_text("# unit  label\n0011223344556677\n")
    braced = tmp_path / "braced.json"
    braced.write_text("{} []")
    for names, words in (
        (deep, "nested too deeply"),
        (braced, "not JSON"),
        (unlabelled, "names.txt:2: no label"),
        (tmp_path, "cannot read the names file"),
        (Path("/dev/zero"), "larger than 4 MiB"),
    ):
        result = amr(
            "listen", "--bundle", str(GOOD_BUNDLE), "--capture", "/dev/null",
            "--state", str(tmp_path / "rx.sqlite"), "--names", str(names),
        )  # fmt: skip
        assert result.returncode == EXIT_INPUT, (names, result.stderr)
        assert f"{names}" in result.stderr and words in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://host:notaport/alerts", "Port could not be cast"),
        ("http://host:99999/alerts", "Port out of range"),
        ("http://" + "a" * 70 + ".example/", "not a host name"),
        ("http://../", "not a host name"),
        ("http://exa mple.org/", "spaces or control characters"),
        ("http://example.org/\x01", "spaces or control characters"),
        ("http://user:secret@example.org/", "user name or password"),
        ("http://example.org/bücher", "not ASCII"),
        ("ftp://example.org/", "'ftp' is not supported"),
    ],
)
def test_a_webhook_that_cannot_be_posted_to(tmp_path: Path, url: str, words: str) -> None:
    result = amr(
        "listen", "--bundle", str(GOOD_BUNDLE), "--capture", "/dev/null",
        "--state", str(tmp_path / "rx.sqlite"), "--webhook", url,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--webhook" in result.stderr and words in result.stderr
    assert "secret" not in result.stderr


def test_options_that_are_not_numbers(tmp_path: Path) -> None:
    result = amr("listen", "--bundle", str(GOOD_BUNDLE), "--duration", "nan")
    assert result.returncode == 2 and "--duration" in result.stderr


def test_captures_that_cannot_be_read(tmp_path: Path) -> None:
    for capture, words in (
        (tmp_path, "it is a directory"),
        (tmp_path / "none.jsonl", "No such file"),
        (Path("/dev/zero"), "longer than 4096 bytes"),
    ):
        result = listen(tmp_path, GOOD_BUNDLE, capture)
        assert result.returncode == EXIT_INPUT, result.stderr
        assert f"{capture}" in result.stderr and words in result.stderr


def test_every_output_is_strict_json() -> None:
    line = json_line({"t": float("nan"), "rssi": [float("inf"), -60], "ok": 1.5})
    assert json.loads(line) == {"t": None, "rssi": [None, -60], "ok": 1.5}


# --- a FIFO, followed live; stopping ---------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "capture.fifo"
    os.mkfifo(path)
    return path


def _as_at_a_terminal() -> None:
    # Run as a person at a terminal runs it: Ctrl-C delivered. A suite run
    # in the background (`make test &`) has SIGINT ignored, and amr listen
    # keeps an ignored SIGINT ignored, as nohup asks.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_listening(fifo: Path, state: Path, *options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [AMR, "listen", "--bundle", str(GOOD_BUNDLE), "--capture", str(fifo),
         "--state", str(state), "--json", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
        preexec_fn=_as_at_a_terminal,
    )  # fmt: skip


def wait_until_reading(process: subprocess.Popen[bytes], fifo: Path, timeout: float = 60) -> None:
    """Until `amr listen` has the FIFO open (past the bundle and its imports,
    in its loop), though no writer has opened it."""
    deadline = time.monotonic() + timeout
    fds = Path(f"/proc/{process.pid}/fd")
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1].decode()
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) == str(fifo) for fd in fds.iterdir()):
                return
        time.sleep(0.05)
    raise AssertionError(f"amr listen did not open {fifo} within {timeout} s")


def next_event(process: subprocess.Popen[bytes], timeout: float = 30) -> dict[str, Any]:
    """The next line `amr listen` prints, as soon as it prints it."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no event within {timeout} s"
    (event,) = strict_json_lines(process.stdout.readline().decode())
    return event


def stopped(process: subprocess.Popen[bytes], signum: int) -> tuple[int, str, float]:
    """Send `signum`; (exit code, stderr, seconds it took to exit)."""
    start = time.monotonic()
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"amr listen still running 30 s after {signum}") from None
    return process.returncode, err.decode(), time.monotonic() - start


def test_a_fifo_capture_is_followed_line_by_line_and_ctrl_c_stops_it(
    fifo: Path, tmp_path: Path
) -> None:
    state = tmp_path / "rx.sqlite"
    lines = (CORPUS / "capture" / "good.jsonl").read_text().splitlines(keepends=True)
    process = start_listening(fifo, state)
    try:
        with fifo.open("w") as writer:
            for line, kind in zip(lines[:2], ["heartbeat", "alert"], strict=True):
                writer.write(line)
                writer.flush()
                # Printed before the next line is written: not at end of file.
                assert next_event(process)["event"] == kind
            time.sleep(0.5)  # the writer still has it open: amr listen waits
            assert process.poll() is None
            code, err, took = stopped(process, signal.SIGINT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert code == EXIT_INTERRUPTED, err
    assert took < STOP_S and "Traceback" not in err
    assert f"stopped by SIGINT; state saved in {state}" in err
    # The state was saved: the same frames again are replays, not events.
    again = listen(tmp_path, GOOD_BUNDLE, CORPUS / "capture" / "good.jsonl", state=state)
    assert [e["event"] for e in strict_json_lines(again.stdout)] == ["heartbeat"]  # only line 3


def test_waiting_for_a_fifo_writer_stops_on_ctrl_c(fifo: Path, tmp_path: Path) -> None:
    process = start_listening(fifo, tmp_path / "rx.sqlite")
    wait_until_reading(process, fifo)  # waiting for a writer that never comes
    time.sleep(0.5)
    code, err, took = stopped(process, signal.SIGINT)
    assert code == EXIT_INTERRUPTED and took < STOP_S, err
    assert "Traceback" not in err and "stopped by SIGINT" in err


@pytest.fixture
def silent_webhook() -> Iterator[str]:
    """An endpoint that takes the connection and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/alerts"


def test_sigterm_stops_at_once_with_a_webhook_that_does_not_answer(
    fifo: Path, tmp_path: Path, silent_webhook: str
) -> None:
    outbox = tmp_path / "rx.outbox"
    process = start_listening(
        fifo, tmp_path / "rx.sqlite", "--webhook", silent_webhook, "--outbox", str(outbox)
    )
    try:
        with fifo.open("w") as writer:
            writer.write((CORPUS / "capture" / "good.jsonl").read_text())
            writer.flush()
            assert [next_event(process)["event"] for _ in range(3)] == [
                "heartbeat",
                "alert",
                "heartbeat",
            ]
            time.sleep(0.5)  # the first POST is in flight, waiting on the endpoint
            code, err, took = stopped(process, signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert code == EXIT_TERMINATED, err
    assert took < STOP_S and "Traceback" not in err
    # The three events printed, and any the listener made since (a slow
    # machine's supervision check, say): every one waits, durably.
    waiting = re.search(rf"(\d+) event\(s\) wait in the outbox {re.escape(str(outbox))}", err)
    assert waiting is not None and int(waiting[1]) >= 3, err
    with sqlite3.connect(outbox) as db:  # durable: the next run sends them
        count = db.execute("SELECT COUNT(*) FROM outbox WHERE delivered IS NULL").fetchone()
        assert count == (int(waiting[1]),)


def test_a_reader_that_goes_away_ends_it_quietly(tmp_path: Path) -> None:
    capture = tmp_path / "long.jsonl"
    capture.write_text("".join(maker.line(n, str(1000 + n)) for n in range(3000)))
    process = subprocess.Popen(
        [AMR, "listen", "--bundle", str(GOOD_BUNDLE), "--capture", str(capture),
         "--state", str(tmp_path / "rx.sqlite"), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    assert strict_json_lines(process.stdout.readline().decode())[0]["event"] == "heartbeat"
    process.stdout.close()  # `amr listen | head -1`
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == EXIT_PIPE, err
    assert "Traceback" not in err and "Exception ignored" not in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_stdout_that_cannot_be_written(tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [AMR, "listen", "--bundle", str(GOOD_BUNDLE),
             "--capture", str(CORPUS / "capture" / "good.jsonl"),
             "--state", str(tmp_path / "rx.sqlite"), "--json"],
            stdout=full, stderr=subprocess.PIPE, text=True, env=env(), timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == EXIT_INPUT, result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot write the events to stdout (No space left on device)" in result.stderr


def test_a_sigint_ignored_by_whoever_started_it_stays_ignored(fifo: Path, tmp_path: Path) -> None:
    """A background job of a script (or nohup) inherits SIGINT ignored; the
    terminal's Ctrl-C is not for it. SIGTERM still stops it."""
    process = subprocess.Popen(
        [AMR, "listen", "--bundle", str(GOOD_BUNDLE), "--capture", str(fifo),
         "--state", str(tmp_path / "rx.sqlite"), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    wait_until_reading(process, fifo)
    process.send_signal(signal.SIGINT)
    time.sleep(1)
    assert process.poll() is None
    code, err, took = stopped(process, signal.SIGTERM)
    assert code == EXIT_TERMINATED and took < STOP_S and "Traceback" not in err, err


def test_a_fifo_ends_when_its_writer_closes_it_or_on_a_bad_line(fifo: Path, tmp_path: Path) -> None:
    lines = (CORPUS / "capture" / "good.jsonl").read_text().splitlines(keepends=True)
    process = start_listening(fifo, tmp_path / "rx.sqlite")
    with fifo.open("w") as writer:
        writer.write(lines[0])
        writer.flush()
        assert next_event(process)["event"] == "heartbeat"
    _, err = process.communicate(timeout=30)  # the writer closed it: the capture's end
    assert process.returncode == 0, err.decode()
    process = start_listening(fifo, tmp_path / "rx2.sqlite")
    with fifo.open("w") as writer:
        writer.write(lines[0])
        writer.flush()
        assert next_event(process)["event"] == "heartbeat"
        writer.write('{"t": NaN, "ad": "00"}\n')
        writer.flush()
        _, err = process.communicate(timeout=30)  # ends at the bad line, writer still open
    assert process.returncode == EXIT_INPUT, err.decode()
    assert f"{fifo}:2: not a capture line (t must be a finite" in err.decode()
    assert "Traceback" not in err.decode()
