"""Whisper's encoder: the log-mel front end, the encoder module, and its checkpoint formats.

Importing the package registers the ``whisper`` encoder and the ``ctranslate2``, ``openai`` and
``hf`` checkpoint formats. Their detectors never claim each other's paths, so the order in which
:func:`~slamkit.models.encoders.whisper.formats.read_whisper_encoder` asks them does not matter.
"""

from slamkit.models.encoders.whisper import ct2, openai  # noqa: F401  (format registration)
from slamkit.models.encoders.whisper import encoder  # noqa: F401  (registers the encoder and the hf format)
