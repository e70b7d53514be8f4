# Lets the pure logic modules import under CPython (host tests, tools) as well
# as MicroPython. The MicroPython compiler folds const() by name wherever it
# is imported from, so this costs nothing on the chip.
try:
    from micropython import const
except ImportError:  # CPython

    def const(value):
        return value
