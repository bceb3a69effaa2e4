"""Face data: the embedded synthetic faces (SynthFaces) and, later, readers for real data sets."""

from .synth import SynthFaces, identity_splits

__all__ = ["SynthFaces", "identity_splits"]
