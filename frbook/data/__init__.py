"""Face data: the embedded synthetic faces, and readers for the real sets the field uses.

* :class:`SynthFaces` (``synth``): procedurally painted faces, the default everywhere.
* :class:`LFW` (``lfw``): the LFW folder and its ``pairs.txt`` protocol; :func:`write_cropped_copy`
  writes a smaller copy of centre crops.
* :class:`ORL` (``orl``): the ORL (AT&T) faces, 40 people x 10 images.
* :class:`ImageFolderFaces` (``folder``): one folder per identity (CASIA-WebFace unpacked).
* :class:`RecFaces`, :func:`pack`, :func:`pack_folder` (``packed``, on ``recordio``):
  InsightFace's ``train.rec``/``.idx``/``property`` training sets, without MXNet.
* :class:`VerificationBin`, :func:`read_bin`, :func:`write_bin` (``verification_bin``):
  InsightFace's verification ``.bin`` files, read with a restricted unpickler.
* ``decoded``: :class:`~frbook.data.decoded.DecodedFaces` and
  :class:`~frbook.data.decoded.PairFaces`, a real set decoded once into a tensor (LFW in
  comparisons), with the fast batch loader that SynthFaces has.

Real sets are found by :func:`find_dataset` (an explicit path, ``$FRBOOK_DATA``, or
``../shared/data``); every real set returns images as SynthFaces does, floats in [0, 1] of shape
(N, C, H, W), and a corrupt file raises :class:`CorruptFileError` naming the file and record.
"""

from .encoded import EncodedFaces, Pairs
from .errors import CorruptFileError, DataNotFoundError
from .folder import FileFaces, ImageFolderFaces
from .lfw import LFW, write_cropped_copy
from .orl import ORL
from .packed import RecFaces, pack, pack_folder, read_property
from .root import find_dataset
from .synth import SynthFaces, identity_splits
from .verification_bin import VerificationBin, pairs_to_bin, read_bin, write_bin

__all__ = [
    "CorruptFileError", "DataNotFoundError", "EncodedFaces", "FileFaces", "ImageFolderFaces",
    "LFW", "ORL", "Pairs", "RecFaces", "SynthFaces", "VerificationBin", "find_dataset",
    "identity_splits", "pack", "pack_folder", "pairs_to_bin", "read_bin", "read_property",
    "write_bin", "write_cropped_copy",
]
