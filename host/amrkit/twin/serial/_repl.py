# The MicroPython REPL of a virtual unit's UART, for the MicroPython unix
# port (which has only a terminal REPL, without raw mode). Started by
# amrkit/twin/serial/repl.py as
#
#     micropython _repl.py STATUS_FD ACK_FD MACHINE
#
# with cwd = the unit's filesystem directory (<unit>/fs), MICROPYPATH = that
# directory + the platform emulations + the firmware tree, AMR_TWIN_DIR = the
# unit's directory. stdin/stdout are the UART: every byte the host sends is
# read here one at a time (nothing is read ahead, so a running program that
# reads sys.stdin gets what follows), everything written to stdout is sent.
#
# It speaks what shared/runtime/pyexec.c does on the ESP32 port: the friendly
# REPL (">>> ", echo, Ctrl-A/B/C/D/E), the raw REPL (Ctrl-A; "OK", output,
# \x04, traceback, \x04, ">"), raw-paste mode ("\x05A\x01" -> "R\x01" and a
# flow-control window), and soft reset (Ctrl-D on an empty line:
# "MPY: soft reboot", fresh globals and modules). Code runs in one globals
# dict that persists between runs, as on the chip.
#
# Like the chip, text output turns "\n" into "\r\n": print(), echo,
# tracebacks. sys.stdout.buffer writes go out unchanged (sys.stdout cannot be
# replaced on the unix port, so its write() is not translated either).
#
# The unit's filesystem is mounted at "/" (a VFS that maps "/" to the fs
# directory and keeps ".." from leaving it), so "/lib/x.py" and "x.py" land
# in <unit>/fs. The directories on MICROPYPATH (read-only) and AMR_TWIN_DIR
# stay reachable under their host paths for imports and the emulations, but
# are not listed in "/".
#
# Ctrl-C: the host interrupts a running program with SIGINT, which the unix
# port turns into KeyboardInterrupt. So that the host never signals this
# process while it is not running a program, each run is bracketed on the
# status pipe: b"E" before, b"I" + sequence number after, and the next step
# waits until the host has acknowledged that number on the ack pipe.
#
# main.py: on the chip a soft reset from the friendly REPL (Ctrl-D on an
# empty line, or a program's sys.exit / machine.soft_reset there) runs
# boot.py and main.py again; from the raw REPL it does not (pyexec's mode is
# kept, and main.py runs only in the friendly one). The twin runs the app in
# a process of its own, so this script reports such a soft reset as b"S" on
# the status pipe and waits for the host's b"S" on the ack pipe (the app has
# been started again) before it says "MPY: soft reboot".
import sys

# MICROPYPATH, without this script's own directory (the first entry): what
# the host runs is no module for the unit's code. Cleared so a file in the
# unit's fs cannot shadow these.
_path = sys.path[1:]
from _contract import DIR_ENV  # noqa: E402  (from the platform emulations, on _path)

sys.path.clear()
import builtins  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402

import micropython  # noqa: E402

# The two pipes stay open for the life of the process.
_STATUS = open(int(sys.argv[1]), "wb")  # noqa: SIM115
_ACK = open(int(sys.argv[2]), "rb")  # noqa: SIM115
_MACHINE = sys.argv[3] if len(sys.argv) > 3 else "ESP32C3 module with ESP32C3"
_FS = os.getcwd()
_TWIN_DIR = os.getenv(DIR_ENV)
_out = sys.stdout.buffer
_in = sys.stdin.buffer
_print = builtins.print
_HERE = '  File "%s"' % __file__

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 1, 2, 3, 4, 5
# statvfs("/"): littlefs in the 2 MiB "vfs" partition of MicroPython's 4 MiB layout
FS_BLOCK = 4096
FS_BLOCKS = 512
RAW_PASTE_WINDOW = 128  # half of MICROPY_REPL_STDIN_BUFFER_MAX (256), as on the ESP32 port
FRIENDLY, RAW, RESET = "friendly", "raw", "reset"


class _Eof(Exception):
    pass


# -- the filesystem ------------------------------------------------------------


def _normalise(cwd, path):
    if not path.startswith("/"):
        path = cwd + "/" + path
    parts = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def _size(vfs, path):
    try:
        return vfs.stat(path)[6]
    except OSError:  # a dangling link
        return 0


def _blocks(vfs, path):
    """Blocks the files and directories under path take (about as littlefs counts)."""
    n = 0
    for entry in vfs.ilistdir(path):
        child = path.rstrip("/") + "/" + entry[0]
        if entry[1] == 0x4000:
            n += 1 + _blocks(vfs, child)
        else:
            n += max(1, (_size(vfs, child) + FS_BLOCK - 1) // FS_BLOCK)
    return n


class UnitFs:
    """The VFS mounted at "/": the unit's fs directory, plus host directories
    reachable (not listed) under their own absolute paths."""

    def __init__(self, root, routes):
        self._root = os.VfsPosix(root)
        # (prefix, vfs, writable), longest prefix first
        self._routes = sorted([(p, os.VfsPosix(p), w) for p, w in routes], key=lambda r: -len(r[0]))
        self._cwd = "/"
        # A rooted VfsPosix's rename() fails (ENOENT) on MicroPython 1.29:
        # renames go through an unrooted one, with the host paths.
        self._host = os.VfsPosix()
        self._where = {id(self._root): root.rstrip("/")}
        for prefix, vfs, _ in self._routes:
            self._where[id(vfs)] = prefix.rstrip("/")

    def _find(self, path, write=False):
        path = _normalise(self._cwd, path)
        for prefix, vfs, writable in self._routes:
            if path == prefix or path.startswith(prefix + "/"):
                if write and not writable:
                    raise OSError(30)  # EROFS
                return vfs, path[len(prefix) :] or "/", path == prefix
        return self._root, path, path == "/"

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        write = "w" in mode or "a" in mode or "+" in mode or "x" in mode
        vfs, inner, _ = self._find(path, write)
        return vfs.open(inner, mode)

    def stat(self, path):
        vfs, inner, _ = self._find(path)
        st = vfs.stat(inner)
        mode = 0x4000 if st[0] & 0x4000 else 0x8000  # as littlefs reports them
        return (mode, 0, 0, 0, 0, 0, st[6], st[7], st[8], st[9])

    def statvfs(self, path):
        vfs, inner, _ = self._find(path)
        if vfs is not self._root:
            return vfs.statvfs(inner)
        free = max(0, FS_BLOCKS - 2 - _blocks(vfs, "/"))  # 2: littlefs's superblocks
        return (FS_BLOCK, FS_BLOCK, FS_BLOCKS, free, free, 0, 0, 0, 0, 255)

    def ilistdir(self, path):
        vfs, inner, _ = self._find(path)
        base = inner.rstrip("/") + "/"
        for entry in vfs.ilistdir(inner):
            name, kind = entry[0], entry[1]
            size = 0 if kind == 0x4000 else _size(vfs, base + name)
            yield (name, kind, 0, size)  # littlefs: (name, type, inode 0, size)

    def mkdir(self, path):
        vfs, inner, _ = self._find(path, True)
        vfs.mkdir(inner)

    def rmdir(self, path):
        vfs, inner, top = self._find(path, True)
        if top:
            raise OSError(22)  # EINVAL: the root of a filesystem
        vfs.rmdir(inner)

    def remove(self, path):
        vfs, inner, top = self._find(path, True)
        if top:
            raise OSError(21)  # EISDIR
        vfs.remove(inner)

    def rename(self, old, new):
        vfs_old, inner_old, top = self._find(old, True)
        vfs_new, inner_new, _ = self._find(new, True)
        if top:
            raise OSError(22)
        if vfs_old is not vfs_new:
            raise OSError(18)  # EXDEV
        where = self._where[id(vfs_old)]
        self._host.rename(where + inner_old, where + inner_new)

    def chdir(self, path):
        path = _normalise(self._cwd, path)
        vfs, inner, _ = self._find(path)
        if not vfs.stat(inner)[0] & 0x4000:
            raise OSError(20)  # ENOTDIR
        self._cwd = path

    def getcwd(self):
        return self._cwd


def _mount_unit_fs():
    routes = [(p, False) for p in _path if p.startswith("/") and p.rstrip("/") != _FS]
    if _TWIN_DIR:
        routes.append((_TWIN_DIR, True))
    unique = []
    for p, w in routes:
        p = p.rstrip("/")
        if p and p not in [u for u, _ in unique]:
            unique.append((p, w))
    routes = unique
    os.umount("/")
    os.mount(UnitFs(_FS, routes), "/")
    os.chdir("/")
    # As on the chip ('', '.frozen', '/lib'), then the emulations and the firmware.
    sys.path[:] = ["", ".frozen", "/lib"] + [p for p, w in routes if not w]


# -- output ---------------------------------------------------------------------


def _w(data):
    _out.write(data)


def _text(s):
    """Text the way the chip's stdout sends it: "\n" becomes "\r\n"."""
    _out.write(s.replace("\n", "\r\n").encode())


def _cooked_print(*args, sep=" ", end="\n", file=None, flush=False):
    if file is None or file is sys.stdout or file is sys.stderr:
        buffer = _out if file is None or file is sys.stdout else sys.stderr.buffer
        sep = " " if sep is None else sep
        end = "\n" if end is None else end
        buffer.write((sep.join([str(a) for a in args]) + end).replace("\n", "\r\n").encode())
    else:
        _print(*args, sep=sep, end=end, file=file)


def _repl_print(obj):
    if obj is not None:
        builtins._ = obj
        _text(repr(obj) + "\n")


def _traceback(exc):
    buf = io.StringIO()
    sys.print_exception(exc, buf)
    lines = buf.getvalue().split("\n")
    _text("\n".join([line for line in lines if not line.startswith(_HERE)]))


# -- input ----------------------------------------------------------------------


def _getc():
    data = _in.read(1)
    if not data:
        raise _Eof()
    return data[0]


# -- running code -----------------------------------------------------------------

_globals = {"__name__": "__main__"}
_modules = set(sys.modules)  # what a soft reset keeps
_seq = 0


def _settled():
    """Report the end of a run and wait for the host to acknowledge it."""
    global _seq
    _seq = (_seq + 1) & 0xFF
    _STATUS.write(bytes([73, _seq]))  # b"I"
    while True:
        ack = _ACK.read(1)
        if not ack:
            raise _Eof()
        if ack[0] == _seq:
            return


def _run(source, mode):
    """Compile and run; the exception it ended with, or None."""
    result = None
    started = False
    while True:
        try:
            if not started:
                started = True
                try:
                    code = compile(source, "<stdin>", mode)
                    micropython.kbd_intr(CTRL_C)
                    _STATUS.write(b"E")
                    exec(code, _globals)
                except BaseException as e:  # everything reaches the REPL, as on the chip
                    result = e
            _settled()
            return result
        except KeyboardInterrupt as e:  # a Ctrl-C that raced the end of the program
            if result is None:
                result = e


def _soft_reset(friendly):
    """friendly: from the friendly REPL, so main.py runs again (the host
    starts the app and acknowledges)."""
    global _globals
    if friendly:
        _STATUS.write(b"S")
        while True:
            ack = _ACK.read(1)
            if not ack:
                raise _Eof()
            if ack == b"S":
                break
    _w(b"MPY: soft reboot\r\n")
    _globals = {"__name__": "__main__"}
    for name in list(sys.modules):
        if name not in _modules:
            del sys.modules[name]
    builtins.print = _cooked_print
    builtins.__repl_print__ = _repl_print
    micropython.kbd_intr(CTRL_C)
    os.chdir("/")


# -- the raw REPL ---------------------------------------------------------------


def _raw_exec(source):
    """Output, \x04, traceback, \x04; RESET for a sys.exit()."""
    exc = _run(source, "exec")
    _w(b"\x04")
    if isinstance(exc, SystemExit):
        _w(b"\x04")
        return RESET
    if exc is not None:
        _traceback(exc)
    _w(b"\x04")
    return None


def _raw_paste(command):
    if command != ord("A"):
        _w(b"R\x00")
        return None
    _w(b"R\x01" + bytes([RAW_PASTE_WINDOW & 0xFF, RAW_PASTE_WINDOW >> 8, 1]))
    remain = RAW_PASTE_WINDOW
    source = bytearray()
    while True:
        c = _getc()
        if c in (CTRL_C, CTRL_D):
            _w(b"\x04")  # end of data acknowledged
            if c == CTRL_C:
                _w(b"\x04")
                _traceback(KeyboardInterrupt())
                _w(b"\x04")
                return None
            break
        source.append(c)
        remain -= 1
        if remain == 0:
            _w(b"\x01")  # another window is free
            remain = RAW_PASTE_WINDOW
    return _raw_exec(bytes(source))


def _raw():
    _w(b"raw REPL; CTRL-B to exit\r\n")
    while True:
        _w(b">")
        line = bytearray()
        while True:
            c = _getc()
            if c == CTRL_A:
                if len(line) == 2 and line[0] == CTRL_E:
                    if _raw_paste(line[1]) == RESET:
                        return RESET
                else:
                    _w(b"raw REPL; CTRL-B to exit\r\n")
                line = bytearray()
                _w(b">")
            elif c == CTRL_B:
                _w(b"\r\n")
                return FRIENDLY
            elif c == CTRL_C:
                line = bytearray()
            elif c == CTRL_D:
                break
            else:
                line.append(c)
        _w(b"OK")
        if not line:
            _w(b"\r\n")
            return RESET
        if _raw_exec(bytes(line)) == RESET:
            return RESET


# -- the friendly REPL -------------------------------------------------------------

_COMPOUND = ("if", "while", "for", "try", "with", "def", "class", "async")


def _starts_with_word(text, word):
    if not text.startswith(word):
        return False
    rest = text[len(word) : len(word) + 1]
    return not rest or not (rest.isalpha() or rest.isdigit() or rest == "_")


def _continues(text):
    """py/repl.c mp_repl_continue_with_input: does the input need more lines?"""
    if not text:
        return False
    compound = text[0] == "@"
    for word in _COMPOUND:
        compound = compound or _starts_with_word(text, word)
    depth = 0
    quote = ""  # "", "'", '"', "'''" or '"""'
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "'" or c == '"':
            if quote in ("", c * 3) and text[i : i + 3] == c * 3:
                quote = "" if quote else c * 3
                i += 2
            elif quote in ("", c):
                quote = "" if quote else c
        elif c == "\\" and text[i + 1 : i + 2] in ("'", '"', "\\"):
            if quote:
                i += 1
        elif not quote:
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
        i += 1
    if len(quote) == 3:
        return True
    if depth > 0 and not quote:
        return True
    if text[-1] == "\\":
        return True
    return compound and text[-1] != "\n"


def _readline(prompt):
    """A line (str), or the control character that ended it."""
    _w(prompt)
    line = bytearray()
    escape = 0
    while True:
        c = _getc()
        if escape:  # ESC [ ... final, or ESC O x: cursor keys, ignored
            if escape == 1:
                escape = 2 if c in (0x5B, 0x4F) else 0
            elif 0x40 <= c <= 0x7E:
                escape = 0
            continue
        if CTRL_A <= c <= CTRL_E and not line:
            return c
        if c == CTRL_C:
            return c
        if c == 0x0D:
            _w(b"\r\n")
            try:
                return line.decode()
            except UnicodeError:
                return repr(bytes(line))  # runs as an expression, as an editor would not
        if c == 0x1B:
            escape = 1
        elif c in (0x08, 0x7F):
            if line:
                line.pop()
                while line and line[-1] & 0xC0 == 0x80:  # the rest of a UTF-8 character
                    line.pop()
                _w(b"\x08\x1b[K")
        elif c >= 0x20:
            line.append(c)
            _w(bytes([c]))


def _banner():
    version = sys.implementation.version
    release = "v%d.%d.%d" % version[:3]
    if len(version) > 3 and version[3]:
        release += "-" + version[3]
    built = sys.version.split(" on ")[-1] if " on " in sys.version else "2026-01-01"
    _text("MicroPython %s on %s; %s\n" % (release, built, _MACHINE))
    _w(b'Type "help()" for more information.\r\n')


def _friendly_exec(source, mode):
    exc = _run(source, mode)
    if isinstance(exc, SystemExit):
        return RESET
    if exc is not None:
        _traceback(exc)
    return None


def _paste_mode():
    _w(b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
    source = bytearray()
    while True:
        c = _getc()
        if c == CTRL_C:
            _w(b"\r\n")
            return None
        if c == CTRL_D:
            _w(b"\r\n")
            return _friendly_exec(bytes(source), "exec")
        source.append(c)
        _w(b"\r\n=== " if c == 0x0D else bytes([c]))


def _friendly():
    _banner()
    while True:
        got = _readline(b">>> ")
        if got == CTRL_A:
            _w(b"\r\n")
            return RAW
        if got == CTRL_B:
            _w(b"\r\n")
            _banner()
            continue
        if got == CTRL_C:
            _w(b"\r\n")
            continue
        if got == CTRL_D:
            _w(b"\r\n")
            return RESET
        if got == CTRL_E:
            if _paste_mode() == RESET:
                return RESET
            continue
        if not got:
            continue
        source = got
        cancelled = False
        while _continues(source):
            more = _readline(b"... ")
            if more == CTRL_C:
                _w(b"\r\n")
                cancelled = True
                break
            if more == CTRL_D:
                break
            source += "\n" + (more if isinstance(more, str) else "")
        if not cancelled and _friendly_exec(source, "single") == RESET:
            return RESET


def main():
    _mount_unit_fs()
    builtins.print = _cooked_print
    builtins.__repl_print__ = _repl_print
    mode = FRIENDLY
    while True:
        try:
            switch = _friendly() if mode == FRIENDLY else _raw()
        except _Eof:  # the host closed the UART: the chip is off
            return
        except KeyboardInterrupt:  # a stray SIGINT between runs: the REPL carries on
            continue
        if switch == RESET:
            try:
                _soft_reset(mode == FRIENDLY)
            except _Eof:
                return
        else:
            mode = switch


main()
