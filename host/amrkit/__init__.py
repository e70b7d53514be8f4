"""amrkit: host toolkit for the AMR discreet panic button."""

__version__ = "0.1.0"
