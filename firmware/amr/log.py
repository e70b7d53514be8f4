# Driver: the app's log and its faults. Lines go to the console (the UART a
# technician's cable reads, the twin's boot record), stamped with ms since
# the wake; a fault is also counted in the diagnostics, which the host reads.
class Log:
    def __init__(self, chip, diag):
        self._chip = chip
        self.diag = diag  # the counters; a service command may replace them

    def say(self, message):
        print("amr: [%d ms] %s" % (self._chip.ticks(), message))

    def fault(self, code, message):
        """Record fault `code` (amr.diag.E_*) and say what it was."""
        self.diag.error(code)
        self.say("FAULT " + message)
