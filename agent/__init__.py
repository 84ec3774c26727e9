"""maix-agent: MaixPy's four vision apps on onnxruntime, driven over MQTT."""

from agent.version import __version__

__all__ = ["__version__"]
