"""What the registry refuses, each with a message that says what to do.

The CLI maps `MasterKeyError` to exit 3 and every other `RegistryError` to
exit 8 (amrkit.cli.common)."""

from __future__ import annotations


class RegistryError(Exception):
    """The registry refused or could not do what was asked."""


class RegistryUnavailable(RegistryError):
    """The registry URL is wrong, or its database cannot be reached or opened."""


class NotInitialised(RegistryError):
    """A database without a registry secret: `amr units init` makes one."""


class UnknownUnit(RegistryError):
    def __init__(self, unit_id: str) -> None:
        super().__init__(
            f"unit {unit_id} is not in the registry: check the id "
            "(`amr units list`), or add it with `amr units add`"
        )
        self.unit_id = unit_id


class TransitionRefused(RegistryError):
    """An illegal or unguarded lifecycle step; the unit is left as it was."""


class MasterKeyError(Exception):
    """The master key is missing, malformed or not this registry's."""
