"""frbook: the library behind the book on deep face recognition losses.

One module per idea: ``frbook.data`` (synthetic and real faces), ``frbook.models`` (backbones),
``frbook.heads`` (cosine and linear classifiers), ``frbook.losses`` (the margin losses, through
a registry), ``frbook.eval`` (verification and identification), ``frbook.train`` (the trainer),
``frbook.search`` (loss function search), ``frbook.tml`` (the transformer-metric loss) and
``frbook.viz`` (plots).
"""

__version__ = "0.1.0"
