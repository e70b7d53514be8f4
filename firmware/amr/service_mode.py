# Role: service mode, the only time the unit is connectable. It opens on the
# service gesture (or a command over the wired link in the store's jig),
# serves the standard services and the command control point (amr/gatt.py)
# to hosts that pair with the passkey from the unit's keys, and closes when
# no host comes, a little while after the last one leaves, after too many
# failed pairings, at its cap, or at once for an alarm.
# The GATT server, the bond table and the commands are imported when service
# mode opens: an ordinary wake does not pay for loading them.
from amr.compat import const

# Service mode stays open this long for a host to connect, a little while
# after the last host leaves (for the next command), and never longer than
# the cap, so a stray gesture cannot keep the radio up and drain the cell.
_WAIT_MS = const(60000)
_LINGER_MS = const(10000)
_MAX_MS = const(300000)
_PAIR_MS = const(30000)  # a host has this long to pair with the passkey
_REFUSALS = const(3)  # unauthenticated hosts before service mode closes
# While it waits for a host, the advertisement moves to a new nonce, token
# and address every 5 to 15 s (uniform): no address or token lasts the
# session, and the moves keep no fixed period.
_ROTATE_MIN_MS = const(5000)
_ROTATE_SPREAD_MS = const(10000)


class ServiceMode:
    def __init__(self, chip, sealer, gauge, log, keep_diag):
        self._chip = chip
        self._sealer = sealer
        self._gauge = gauge
        self._log = log
        self._keep_diag = keep_diag  # keep_diag(diag): a command replaced the counters
        self._link = None  # the ServiceLink while service mode is open
        self._bonds = None  # its bond table, which the stack and the commands share
        self._until = 0  # RTC ms when it closes unless a host is there
        self._cap = 0
        self._rotate_at = 0  # RTC ms when the advertisement moves on

    @property
    def is_open(self):
        return self._link is not None

    def open(self, now):
        if self._link is not None:
            return
        from amr import board, records
        from amr.bonds import Bonds
        from amr.gatt import ServiceLink
        from amr.nvs import record_store
        from amr.version import VERSION

        bonds = Bonds(record_store(records.BONDS))
        if bonds.damaged:
            self._log.say("bond table damaged: hosts must pair again")
        info = ("AMR", board.NAME, VERSION, board.CHIP)
        link = ServiceLink(bonds, info)
        gauge = self._gauge
        gauge.refresh()  # a fresh reading for the session, and every few seconds
        gauge.refreshing = True
        ad, passkey = self._advert()
        link.start(ad, passkey, gauge.percent())
        self._rotate_at = self._next_rotation(now)
        self._link = link
        self._bonds = bonds
        self._until = now + _WAIT_MS
        self._cap = now + _MAX_MS
        self._log.say("service mode: connectable for %d s" % (_WAIT_MS // 1000))

    def deadline(self):
        if self._link is None:
            return None
        return min(self._until, self._cap, self._rotate_at)

    def _advert(self):
        """A fresh nonce's advertisement, and the passkey that goes with it."""
        from amr.frame import service_ad

        nonce = self._chip.random_u32()
        sealer = self._sealer
        return service_ad(nonce, sealer.service_token(nonce)), sealer.passkey(nonce)

    def _next_rotation(self, now):
        return now + _ROTATE_MIN_MS + self._chip.random_u32() % (_ROTATE_SPREAD_MS + 1)

    def poll(self, now):
        link = self._link
        if link is None:
            return
        while link.notes:
            self._log.say("service: " + link.notes.pop(0))
        while link.requests:
            conn, name = link.requests.pop(0)
            link.reply(conn, self._command(name))
        link.drop_idle(self._chip.ticks(), _PAIR_MS)
        # A host may come and go between two looks (a quick read): count it too.
        if link.trusted or link.active:
            self._until = now + _LINGER_MS
            link.active = False
        if self._gauge.poll(now):
            link.battery(self._gauge.percent())
        # While a host is connected nothing is advertised; the move waits
        # for it to leave, then comes at once.
        if now >= self._rotate_at and not link.connections:
            ad, passkey = self._advert()
            if link.rotate(ad, passkey):
                self._rotate_at = self._next_rotation(now)
        if link.refused >= _REFUSALS:
            # Each failed passkey attempt tells a guesser a little; stop them.
            self.close("%d hosts failed to pair" % link.refused)
        elif now >= self._until or now >= self._cap:
            self.close("no host" if not link.served else "done")

    def close(self, why):
        if self._link is None:
            return
        self._link.stop()
        self._link = None
        self._bonds = None
        self._gauge.refreshing = False
        self._log.say("service mode closed (%s)" % why)

    def _command(self, request):
        """A service command from an authenticated host (its name, then a 0
        byte and its argument if it has one), run as on the wired link but
        for the wired-only ones, which are refused; its JSON reply."""
        import json

        from amr import commands
        from amr.contract import ARG_SEPARATOR

        arg = None
        cut = request.find(bytes((ARG_SEPARATOR,)))
        if cut >= 0:
            request, arg = request[:cut], request[cut + 1 :]
        try:
            name = request.decode()
        except UnicodeError:
            return b'{"error": "a command is a name in ASCII"}'
        self._log.say("service command: %s" % name)
        ctx = commands.Context(self._chip, self._log.diag, self._keep_diag, True, bonds=self._bonds)
        return json.dumps(commands.run(name, ctx, arg, False)).encode()
