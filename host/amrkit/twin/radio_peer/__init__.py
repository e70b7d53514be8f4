"""A virtual unit's side of the radio: the bumble device its firmware drives.

The firmware's ``bluetooth`` emulation (twin/platform/bluetooth.py) opens a
TCP connection here when its stack is first activated. Each connection is
one boot of the firmware; each activation of its stack is one bumble device
on the virtual radio, advertising from the address the firmware chose
(a fresh one per frame), scanning, serving GATT, pairing and bonding. When
the firmware process ends (deep sleep, power cut) the device leaves the
radio and its links drop, as a chip going to sleep does.

- ``wire``: the JSON-lines link to the firmware: its calls, the device's
  IRQ events, and asking the firmware and waiting for its answer;
- ``device``: the unit's device on the radio and the table of the
  firmware's calls; ``UnitRadio``, where the firmware reaches it;
- ``gatt``: the firmware's GATT database on the device;
- ``pairing``: pairing as the firmware configured it, and bonds kept in the
  unit's flash.
"""
