# The app's version, served as the Device Information firmware revision
# and reported by the service readout; matches the host package's.
VERSION = "0.1.0"
