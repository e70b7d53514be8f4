"""Build the firmware bundle for one board profile: `make firmware BOARD=...`.

    python tools/build_firmware.py --board esp32c3-coin [--out build] [--write-source]

The work is in amrkit.build, which the twin uses to deploy units as well.
"""

import sys

from amrkit.build import main

if __name__ == "__main__":
    sys.exit(main())
