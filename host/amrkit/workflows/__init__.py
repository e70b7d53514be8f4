"""The store's workflows: each takes a unit through one step of its life,
on the `Unit` API (any link) and the registry, so that a failed step leaves
the registry as it was, and the CLI only parses and prints.

    registration  which registry unit is on the cable; a flash recorded
    provision     new keys (a new generation) and config, proved by challenge
    wipe          keys, config and bonds erased, the erasure proved
    bundles       a receiver's bundle of units, keys bound to one receiver
"""
