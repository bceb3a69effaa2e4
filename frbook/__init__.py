"""frbook: the library behind the book on deep face recognition losses.

One module per idea: ``frbook.data`` (synthetic and real faces), ``frbook.models`` (backbones),
``frbook.heads`` (cosine and linear classifiers), ``frbook.losses`` (the margin losses, through
a registry, the transformer-metric loss among them), ``frbook.eval`` (verification and
identification), ``frbook.train`` (the one training engine, its config schema and data splits),
``frbook.protocol`` (what a comparison holds fixed), ``frbook.experiment`` (comparisons),
``frbook.search`` (loss function search), ``frbook.results`` (result files and the one verdict),
``frbook.report`` (tables for chapters) and ``frbook.viz`` (plots).
"""

__version__ = "0.1.0"
