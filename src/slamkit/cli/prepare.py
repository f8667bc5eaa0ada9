"""``slamkit prepare CORPUS …``: write data sets and their manifests.

One ``_add_*`` function per kind of corpus adds its parser(s); :data:`_PARSERS` lists them in the
order ``slamkit prepare --help`` shows them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from slamkit.cli.common import Subparsers
from slamkit.cli.prepare_augment import add_augment
from slamkit.cli.prepare_concat import add_concat


def _asset_error(corpus: str, exc: Exception) -> int:
    """One error line for a missing or broken asset (suggesting --install when it is missing); exit 2."""
    from slamkit.assets import AssetMissingError

    hint = " (or pass --install)" if isinstance(exc, AssetMissingError) else ""
    print(f"slamkit prepare {corpus}: error: {exc}{hint}", file=sys.stderr)
    return 2


def _run_corpus(corpus: str, call: Callable[[], dict]) -> int:
    """Print ``call()``'s summary as JSON; a :class:`CorpusError` becomes one error line and exit 2."""
    from slamkit.prepare import CorpusError

    try:
        print(json.dumps(call()))
    except CorpusError as exc:
        print(f"slamkit prepare {corpus}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_prepare_tones(args: argparse.Namespace) -> int:
    """`prepare tones --out DIR`: the synthetic tone-speech corpus."""
    from slamkit.prepare.tones import make_tone_corpus

    out = {}
    for offset, (split, n) in enumerate((("train", args.train), ("valid", args.valid), ("test", args.test))):
        if n > 0:
            out[split] = str(make_tone_corpus(args.out, n, seed=args.seed + 1000 * offset, name=split))
    print(json.dumps(out))
    return 0


def _tts_voice_options(args: argparse.Namespace) -> dict:
    """The engine mix and pseudo-speaker options of `prepare tts`, checked; a ValueError names the option."""
    from slamkit.prepare.engine_mix import parse_engines
    from slamkit.prepare.perturb import MAX_SEMITONES, TEMPO_LIMITS, check_range

    if args.pseudo_speakers < 0:
        raise ValueError(f"--pseudo-speakers must be >= 0, got {args.pseudo_speakers}")
    options = {"engines": parse_engines(args.engines, option="--engines"), "pseudo_speakers": args.pseudo_speakers}
    if args.pseudo_pitch is not None:
        options["pseudo_pitch"] = check_range(args.pseudo_pitch, "--pseudo-pitch", (-MAX_SEMITONES, MAX_SEMITONES))
    if args.pseudo_tempo is not None:
        options["pseudo_tempo"] = check_range(args.pseudo_tempo, "--pseudo-tempo", TEMPO_LIMITS)
    return options


def cmd_prepare_tts(args: argparse.Namespace) -> int:
    """`prepare tts TEXTFILE --out DIR`: speak the lines of a text file with TTS engines."""
    from slamkit.assets import AssetError
    from slamkit.prepare import CorpusError, prepare_tts

    try:
        voices = _tts_voice_options(args)
        summary = prepare_tts(args.text_file, args.out, num_utterances=args.limit, seed=args.seed,
                              telephone_fraction=args.telephone_fraction, workers=args.workers,
                              short_phrases=args.short_phrases, **voices)
    except (ValueError, AssetError, CorpusError) as exc:
        print(f"slamkit prepare tts: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def cmd_prepare_corpus(args: argparse.Namespace) -> int:
    """`prepare asterisk|librivox --out DIR`: manifests of the real speech in Debian packages."""
    from slamkit.assets import AssetError
    from slamkit.prepare import CORPORA

    kwargs = {k: getattr(args, k) for k in ("root", "install", "cards") if getattr(args, k, None) is not None}
    try:
        print(json.dumps(CORPORA.get(args.corpus)(args.out, **kwargs)))
    except AssetError as exc:
        return _asset_error(args.corpus, exc)
    return 0


def cmd_prepare_captions(args: argparse.Namespace) -> int:
    """`prepare clotho|audiocaps|musiccaps|secap DIR --out M`: the official layout to our manifest."""
    from slamkit.prepare import CORPORA

    options = ("split", "audio_dir", "per_caption", "prompt")
    kwargs = {k: getattr(args, k) for k in options if getattr(args, k, None) not in (None, False)}
    return _run_corpus(args.corpus, lambda: CORPORA.get(args.corpus)(args.root, args.out, **kwargs))


def cmd_prepare_sonicpi(args: argparse.Namespace) -> int:
    """`prepare sonicpi [DIR] --out OUT`: train/test captioning manifests of the Sonic Pi samples."""
    from slamkit.assets import AssetError
    from slamkit.prepare.sonicpi import prepare_sonicpi

    try:
        print(json.dumps(prepare_sonicpi(args.out, root=args.root, install=args.install, test_fraction=args.test_fraction,
                                         seed=args.seed, per_caption=args.per_caption)))
    except AssetError as exc:
        return _asset_error("sonicpi", exc)
    return 0


def cmd_prepare_librispeech(args: argparse.Namespace) -> int:
    """`prepare librispeech DIR --out M`: a manifest of a LibriSpeech folder, optionally with biasing lists."""
    from slamkit.prepare import prepare_librispeech

    if args.biasing_list is None and (args.distractors is not None or args.seed is not None):
        print("slamkit prepare librispeech: error: --distractors and --seed need --biasing-list", file=sys.stderr)
        return 2
    options = {"distractors": args.distractors, "seed": args.seed}
    print(json.dumps(prepare_librispeech(args.root, args.out, biasing_tsv=args.biasing_tsv, biasing_list=args.biasing_list,
                                         **{k: v for k, v in options.items() if v is not None})))
    return 0


def _add_tones(prep: Subparsers) -> None:
    t = prep.add_parser("tones", help="synthetic tone-speech corpus (no TTS or download needed), for the tiny recipe")
    t.add_argument("--out", required=True, help="output folder: {train,valid,test}.jsonl and WAV folders")
    t.add_argument("--train", type=int, default=1000, help="training clips (default 1000)")
    t.add_argument("--valid", type=int, default=40, help="validation clips (default 40)")
    t.add_argument("--test", type=int, default=100, help="test clips (default 100)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.set_defaults(func=cmd_prepare_tones)


def _add_tts(prep: Subparsers) -> None:
    t = prep.add_parser("tts", help="speak the sentences of a text file with flite/espeak-ng/piper/kokoro/festival (many voices)")
    t.add_argument("text_file", metavar="TEXTFILE", help="UTF-8 text, one sentence per line (the transcripts)")
    t.add_argument("--out", required=True, help="output folder: tts.jsonl and wav/")
    t.add_argument("--engines", nargs="+", default=["flite", "espeak-ng"], metavar="ENGINE[:WEIGHT]",
                   help="TTS engines (flite, espeak-ng, piper, kokoro, festival), equally likely, or weighted: "
                        "piper:0.6,flite:0.2,espeak-ng:0.2 (default: flite espeak-ng)")
    t.add_argument("--limit", type=int, default=None, help="number of utterances (default: one per usable line)")
    t.add_argument("--seed", type=int, default=0, help="random seed for voices, rates, pitches (default 0)")
    t.add_argument("--telephone-fraction", type=float, default=0.0, help="share of clips passed through 8 kHz (default 0)")
    t.add_argument("--workers", type=int, default=None, help="processes (default: all usable cores)")
    t.add_argument("--short-phrases", type=int, default=0, metavar="N",
                   help="also speak N short utterances (1-3-word spans of the lines, numbers, ordinals, dates), "
                        "spread among the lines (default 0)")
    t.add_argument("--pseudo-speakers", type=int, default=0, metavar="N",
                   help="make N pseudo-speakers (pitch+formant shift and tempo change of the synthesised audio); each "
                        "utterance is spoken by its voice as is or by one of them (default 0: none)")
    t.add_argument("--pseudo-pitch", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="semitones the pseudo-speakers' pitch shifts span (default -3 3; below -3 Whisper's WER climbs)")
    t.add_argument("--pseudo-tempo", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="tempo factors of the pseudo-speakers (default 0.9 1.1)")
    t.set_defaults(func=cmd_prepare_tts)


# name -> (help, accepts --cards)
_DEBIAN_CORPORA = {
    "asterisk": ("Asterisk phone prompts (Debian asterisk-core-sounds-en-wav), 553 utterances", False),
    "librivox": ("the 5 LibriVox clips of Debian pocketsphinx-testdata", True),
}


def _add_debian_corpora(prep: Subparsers) -> None:
    for corpus, (text, cards) in _DEBIAN_CORPORA.items():
        t = prep.add_parser(corpus, help=f"manifest of {text}")
        t.add_argument("--out", required=True, help=f"output folder for {corpus}.jsonl")
        t.add_argument("--root", default=None, help="extraction root of the Debian package(s) (default: the installed asset)")
        t.add_argument("--install", action="store_true", default=None, help="install the asset first if it is missing")
        if cards:
            t.add_argument("--cards", action="store_true", default=None, help="also write cards.jsonl (5 short clips)")
        t.set_defaults(func=cmd_prepare_corpus)


# name -> (help, accepts --audio-dir, accepts --per-caption, splits)
_CAPTION_CORPORA = {
    "clotho": ("Clotho v2 (clotho_captions_<split>.csv + audio folders), task aac", False, True, "development | validation | evaluation (default: all found)"),
    "audiocaps": ("AudioCaps (train/val/test.csv; audio you downloaded, named by YouTube id), task aac", True, True, "train | val | test (default: all)"),
    "musiccaps": ("MusicCaps (musiccaps-public.csv; audio you downloaded, named by ytid), task mc", True, False, "train | test (is_audioset_eval) (default: all)"),
    "secap": ("SECap emotion-caption test set (dataset/fid2captions.json + wav/), task sec", False, False, "test"),
}


def _add_caption_corpora(prep: Subparsers) -> None:
    for corpus, (text, audio_dir, per_caption, splits) in _CAPTION_CORPORA.items():
        t = prep.add_parser(corpus, help=f"manifest of {text}")
        t.add_argument("root", metavar="DIR", help="the corpus folder as downloaded (its official layout)")
        t.add_argument("--out", required=True, help="output manifest (JSONL): one line per clip, all captions in `references`")
        t.add_argument("--split", default=None, help=f"split: {splits}")
        if audio_dir:
            t.add_argument("--audio-dir", default=None, help="folder of the audio you downloaded (default: DIR)")
        if per_caption:
            t.add_argument("--per-caption", action="store_true", help="one line per caption (training only; never score such a manifest)")
        t.add_argument("--prompt", default=None, help="prompt written into each line (default: the task's)")
        t.set_defaults(func=cmd_prepare_captions)


def _add_sonicpi(prep: Subparsers) -> None:
    t = prep.add_parser("sonicpi", help="captioning demo data: the Sonic Pi samples with templated captions, task aac")
    t.add_argument("root", metavar="DIR", nargs="?", default=None, help="samples folder or the Debian package's extraction root (default: the installed sonic-pi-samples asset)")
    t.add_argument("--out", required=True, help="output folder: train.jsonl, test.jsonl, baseline_{majority,nearest}.hyp.jsonl")
    t.add_argument("--install", action="store_true", help="install the asset first if it is missing")
    t.add_argument("--test-fraction", type=float, default=0.2, help="share of each category held out for testing (default 0.2)")
    t.add_argument("--seed", type=int, default=0, help="changes which clips are held out (default 0)")
    t.add_argument("--per-caption", action="store_true", help="training manifest with one line per reference caption (5 per clip)")
    t.set_defaults(func=cmd_prepare_sonicpi)


def _add_librispeech(prep: Subparsers) -> None:
    t = prep.add_parser("librispeech", help="manifest of a LibriSpeech folder (the root or one subset)")
    t.add_argument("root", metavar="DIR", help="LibriSpeech/ or LibriSpeech/<subset>/")
    t.add_argument("--out", required=True, help="output manifest (JSONL)")
    t.add_argument("--biasing-tsv", metavar="FILE", default=None,
                   help="contextual biasing: set each line's biasing_words to its list in a published test-{clean,other}.biasing_N.tsv (every utterance needs a line)")
    t.add_argument("--biasing-list", metavar="FILE", default=None,
                   help="contextual biasing: a one-word-per-line list (e.g. all_rare_words.txt); each line gets its --biasing-tsv list, else the reference's words in FILE, plus --distractors words drawn from FILE")
    t.add_argument("--distractors", type=int, default=None, help="with --biasing-list: distractors per utterance (default 100)")
    t.add_argument("--seed", type=int, default=None, help="with --biasing-list: seed of the draw (default 0)")
    t.set_defaults(func=cmd_prepare_librispeech)


def cmd_prepare_covost2(args: argparse.Namespace) -> int:
    """`prepare covost2 DIR --out M`: one CoVoST 2 split (Common Voice clips + CoVoST TSVs) to a manifest."""
    from slamkit.prepare import CORPORA

    return _run_corpus("covost2", lambda: CORPORA.get("covost2")(args.root, args.out, src=args.src, tgt=args.tgt, split=args.split,
                                                                 tsv_dir=args.tsv_dir, cot=args.cot))


def _add_covost2(prep: Subparsers) -> None:
    t = prep.add_parser("covost2", help="manifest of a CoVoST 2 split (speech translation, task st or st_cot)")
    t.add_argument("root", metavar="DIR", help="the Common Voice folder of the source language: clips/*.mp3 and validated.tsv")
    t.add_argument("--out", required=True, help="output manifest (JSONL)")
    t.add_argument("--src", default="en", help="source language code (default en)")
    t.add_argument("--tgt", default="de", help="target language code (default de)")
    t.add_argument("--split", default="test", help="train | dev | test (default test)")
    t.add_argument("--tsv-dir", default=None, help="folder of covost_v2.<src>_<tgt>[.<split>].tsv (default: DIR)")
    t.add_argument("--cot", action="store_true",
                   help="chain-of-thought targets, task st_cot: '<transcript> <|translation|> <translation>' (CoT-ST)")
    t.set_defaults(func=cmd_prepare_covost2)


def cmd_prepare_lrs3(args: argparse.Namespace) -> int:
    """`prepare lrs3 DIR --out OUT`: LRS3 manifests for lip reading (or audio-visual) recognition."""
    from slamkit.prepare.lrs3 import prepare_lrs3

    return _run_corpus("lrs3", lambda: prepare_lrs3(args.root, args.out, subset=args.subset, valid_ids=args.valid_ids,
                                                    audio_visual=args.audio_visual))


def _add_lrs3(prep: Subparsers) -> None:
    t = prep.add_parser("lrs3", help="manifests of LRS3 for visual (lip reading) or audio-visual recognition, task vsr")
    t.add_argument("root", metavar="DIR", help="LRS3 root: AV-HuBERT's prepared 433h_data/ (or 30h_data/) + video/, or the release's trainval/ and test/ with video/ mouth crops")
    t.add_argument("--out", required=True, help="output folder: train.jsonl, valid.jsonl, test.jsonl")
    t.add_argument("--subset", default="433h", choices=("433h", "30h"), help="AV-HuBERT's training subset (default 433h)")
    t.add_argument("--valid-ids", metavar="FILE", default=None, help="release layout: clip ids held out of trainval for validation (AV-HuBERT's lrs3-valid.id)")
    t.add_argument("--audio-visual", action="store_true", help="records for AVSR: source = the audio, video = the mouth crops (encoder av_hubert_av)")
    t.set_defaults(func=cmd_prepare_lrs3)


#: The ``prepare`` subcommands, in the order of ``slamkit prepare --help``.
_PARSERS: tuple[Callable[[Subparsers], None], ...] = (
    _add_tones, _add_tts, _add_debian_corpora, _add_caption_corpora, _add_sonicpi, _add_librispeech, _add_covost2, _add_lrs3,
    add_augment, add_concat,
)


def register(subparsers: Subparsers) -> None:
    """Add ``prepare`` and its subcommands (one per corpus)."""
    p = subparsers.add_parser("prepare", help="write data sets and their manifests")
    prep = p.add_subparsers(dest="corpus", required=True, metavar="CORPUS")
    for add in _PARSERS:
        add(prep)
