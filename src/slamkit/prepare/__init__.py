"""Corpus preparation: turn a corpus on disk (or a text file, through TTS) into a JSONL manifest.

One registry, :data:`CORPORA` (:mod:`slamkit.prepare.base`); importing this package registers
every corpus: ``tts`` (:mod:`~slamkit.prepare.tts`), ``asterisk`` and ``librivox``
(:mod:`~slamkit.prepare.debian`), ``librispeech`` (:mod:`~slamkit.prepare.librispeech`),
``clotho``, ``audiocaps``, ``musiccaps``, ``secap`` (:mod:`~slamkit.prepare.captions`) and
``sonicpi`` (:mod:`~slamkit.prepare.sonicpi`), ``covost2`` (:mod:`~slamkit.prepare.covost2`). The runtime path (:mod:`slamkit.data`) never
imports this package.
"""

from slamkit.prepare.base import CORPORA, CorpusError
from slamkit.prepare.tts import prepare_tts, with_short_phrases
from slamkit.prepare.debian import prepare_asterisk, prepare_librivox
from slamkit.prepare.librispeech import prepare_librispeech
from slamkit.prepare import captions as _captions  # noqa: F401  (registration)
from slamkit.prepare import sonicpi as _sonicpi  # noqa: F401  (registration)
from slamkit.prepare import covost2 as _covost2  # noqa: F401  (registration)
from slamkit.prepare import lrs3 as _lrs3  # noqa: F401  (registration)

__all__ = ["CORPORA", "CorpusError", "prepare_asterisk", "prepare_librivox", "prepare_librispeech", "prepare_tts", "with_short_phrases"]
