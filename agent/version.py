"""The agent's version and protocol version."""

__version__ = "0.1.0"
PROTOCOL = 1
