# Timing helper shared by the MicroPython bench scripts (bench_press.py,
# bench_frame.py), which run under the unix port with tools/ as their path.
import gc
import time

import micropython


def best_of(rounds, fn, *args):
    """(best µs, bytes allocated in that run) over `rounds` calls of fn(*args),
    with the collector off while timing so it neither runs nor hides garbage."""
    best_us = None
    best_alloc = 0
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        m0 = micropython.mem_total()
        t0 = time.ticks_us()
        fn(*args)
        us = time.ticks_diff(time.ticks_us(), t0)
        alloc = micropython.mem_total() - m0
        gc.enable()
        if best_us is None or us < best_us:
            best_us = us
            best_alloc = alloc
    return best_us, best_alloc
