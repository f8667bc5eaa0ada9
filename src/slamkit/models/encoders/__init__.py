"""Audio encoders: one module or folder per family, all registered in :data:`ENCODERS`.

:mod:`~slamkit.models.encoders.base` holds the protocol every encoder follows, the registry and
``build_encoder``; importing this package imports each family, which registers it. Families never
import this package, only ``base`` and their own modules.
"""

from slamkit.models.encoders.base import ENCODERS, AudioEncoder, EncoderCard, build_encoder, encoder_table, preset_names

# Registration (listings sort by name, so the order here does not matter).
from slamkit.models.encoders import ssl as _ssl  # noqa: E402,F401
from slamkit.models.encoders import whisper as _whisper  # noqa: E402,F401
from slamkit.models.encoders import beats as _beats  # noqa: E402,F401
from slamkit.models.encoders import ast as _ast  # noqa: E402,F401
from slamkit.models.encoders.clap import audio as _clap  # noqa: E402,F401
from slamkit.models.encoders.mert import encoder as _mert  # noqa: E402,F401
from slamkit.models.encoders.data2vec2 import eat as _eat  # noqa: E402,F401
from slamkit.models.encoders.data2vec2 import emotion2vec as _emotion2vec  # noqa: E402,F401
from slamkit.models.encoders.av_hubert import encoder as _av_hubert  # noqa: E402,F401

__all__ = ["ENCODERS", "AudioEncoder", "EncoderCard", "build_encoder", "encoder_table", "preset_names"]
