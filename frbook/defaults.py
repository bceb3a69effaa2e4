"""The library's one default for image channels and side (no imports, so the CLI's ``--help``
stays fast).

Every reader of real faces, the trainer, the backbones built for it and the data commands use
these: grey 64x64, what the book trains on (its SynthFaces, its LFW and ORL copies are grey).
Colour is ``channels=3``; InsightFace's sets are 112x112 colour (``size=112, channels=3``).
``python -m frbook eval`` converts a benchmark to whatever a model was built for, and its report
notes every conversion.
"""

DEFAULT_CHANNELS = 1
DEFAULT_SIZE = 64
