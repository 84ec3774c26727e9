"""Model manifest, fetching and verification (no inference here: see ``agent.vision``)."""

from agent.models.manifest import InputSpec, Manifest, ModelSpec, load_manifest

__all__ = ["InputSpec", "Manifest", "ModelSpec", "load_manifest"]
