"""Whisper tiny.en WER of the TTS voices, plain and as pseudo-speakers (the table of docs/voices.md).

    python benchmarks/voices_wer.py --out /tmp/voices-wer --sentences 20
    python benchmarks/voices_wer.py --out /tmp/voices-wer-festival --sentences 60 --voices festival
    python benchmarks/voices_wer.py --out /tmp/voices-wer-kokoro --sentences 60 --voices kokoro "piper, drawn"

Speaks N sentences of the demo's text (fortune cookies, asset `fortunes`, shuffled with --seed as
`slamkit demo` does) in each condition below (fixed voices at the engines' default rate, or piper
voices drawn as `slamkit prepare tts` draws them, with its 8 pseudo-speakers), decodes every clip with
faster-whisper (Whisper tiny.en, asset `whisper-tiny.en`, int8, greedy, as `slamkit demo` does) and
scores with slamkit's corpus WER (`slamkit.eval.metrics.word_error`, whisper normaliser). Writes
`<out>/c<i>/*.wav` (condition i of the table), `<out>/hyps.jsonl` and `<out>/wer.json` (with each
condition's synthesis speed, × real time); prints a markdown table. ``--voices`` keeps only the
conditions whose name starts with one of its words (``--voices festival "flite slt"``).
Needs flite, espeak-ng, festival + its voices, piper-tts + the piper-joe voice, the kokoro-82m and
kokoro-voices assets (only for the chosen conditions), and faster-whisper (the `demo` extra).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import soundfile as sf

from slamkit.assets import asset_path
from slamkit.eval.metrics import word_error
from slamkit.prepare.kokoro_voice import VOICES as KOKORO_VOICES
from slamkit.prepare.perturb import PseudoSpeaker, draw_pseudo_speakers
from slamkit.prepare.text import fortune_sentences
from slamkit.prepare.voices import TTS_ENGINES, TTSJob, Voice, synthesize

Setting = tuple[Voice, PseudoSpeaker | None]
PIPER = Voice("piper", "joe", rate=1.0, pitch=None, settings=(("noise_scale", 0.667), ("noise_w_scale", 0.8)))
SPEAKERS = draw_pseudo_speakers(8, seed=0)  # `prepare tts --pseudo-speakers 8`'s set (default ranges)


def _fixed(voice: Voice, pseudo: PseudoSpeaker | None = None) -> Callable[[int], Setting]:
    return lambda i: (voice, pseudo)


def _drawn(i: int, engine: str = "piper") -> Voice:
    """The ``engine`` voice `prepare tts` would draw for utterance ``i`` (piper: rate, noise scales)."""
    return TTS_ENGINES.get(engine).sample_voice(random.Random(f"0-{i}"))


# condition -> sentence index -> (voice, pseudo-speaker or None)
CONDITIONS: dict[str, Callable[[int], Setting]] = {
    "piper": _fixed(PIPER),
    "piper -5 st": _fixed(PIPER, PseudoSpeaker(1, -5.0, 1.0)),
    "piper -3 st": _fixed(PIPER, PseudoSpeaker(2, -3.0, 1.0)),
    "piper +3 st": _fixed(PIPER, PseudoSpeaker(3, 3.0, 1.0)),
    "piper +5 st": _fixed(PIPER, PseudoSpeaker(4, 5.0, 1.0)),
    "piper +3 st, tempo 1.15": _fixed(PIPER, PseudoSpeaker(5, 3.0, 1.15)),
    "piper -3 st, tempo 0.87": _fixed(PIPER, PseudoSpeaker(6, -3.0, 0.87)),
    "piper, drawn voices": lambda i: (_drawn(i), None),
    "piper, drawn voices, 8 pseudo-speakers": lambda i: (_drawn(i), SPEAKERS[i % len(SPEAKERS)]),
    "flite slt": _fixed(Voice("flite", "slt", rate=1.0, pitch=1.0)),
    "espeak-ng en-us": _fixed(Voice("espeak-ng", "en-us", rate=1.0, pitch=1.0)),
    "festival slt_hts": _fixed(Voice("festival", "slt_hts", rate=1.0, pitch=None)),
    "festival kal_diphone": _fixed(Voice("festival", "kal_diphone", rate=1.0, pitch=1.0)),
    "festival ked_diphone": _fixed(Voice("festival", "ked_diphone", rate=1.0, pitch=1.0)),
    "festival, drawn voices": lambda i: (_drawn(i, "festival"), None),
    **{f"kokoro {name}": _fixed(Voice("kokoro", name, rate=1.0, pitch=None)) for name in KOKORO_VOICES},
    "kokoro, drawn voices": lambda i: (_drawn(i, "kokoro"), None),
    "kokoro, drawn voices, 8 pseudo-speakers": lambda i: (_drawn(i, "kokoro"), SPEAKERS[i % len(SPEAKERS)]),
}


def speak_all(sentences: list[str], out: Path, names: list[str]) -> dict[str, dict]:
    """Synthesise every sentence in each condition of ``names``; ``{condition: {"wavs", "audio_s", "synth_s"}}``.

    Condition i of :data:`CONDITIONS` goes to ``<out>/c<i>`` whichever conditions are chosen."""
    made = {}
    for index, (name, setting) in enumerate(CONDITIONS.items()):
        if name not in names:
            continue
        folder = out / f"c{index}"
        folder.mkdir(parents=True, exist_ok=True)
        start, wavs, audio = time.perf_counter(), [], 0.0
        for i, text in enumerate(sentences):
            voice, pseudo = setting(i)
            job = TTSJob(key=f"s{i:03d}", text=text, where=f"sentence {i}", voice=voice, telephone=False,
                         wav=folder / f"s{i:03d}.wav", pseudo=pseudo)
            result = synthesize(job)
            if "error" in result:
                raise RuntimeError(f"{name}: {result['error']}")
            wavs.append(job.wav)
            audio += result["duration"]
        made[name] = {"wavs": wavs, "audio_s": audio, "synth_s": time.perf_counter() - start}
    return made


def transcribe(made: dict[str, dict], sentences: list[str], out: Path) -> dict[str, dict]:
    """Whisper tiny.en on every clip; the corpus WER of each condition."""
    from faster_whisper import WhisperModel

    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    model = WhisperModel(str(asset_path("whisper-tiny.en")), device="cpu", compute_type="int8")
    scores = {}
    with (out / "hyps.jsonl").open("w") as log:
        for name, info in made.items():
            hyps = []
            for wav, ref in zip(info["wavs"], sentences):
                audio, _ = sf.read(str(wav), dtype="float32")
                segments, _ = model.transcribe(audio, beam_size=1, language="en", condition_on_previous_text=False,
                                               vad_filter=False)
                hyps.append(" ".join(s.text.strip() for s in segments))
                log.write(json.dumps({"condition": name, "wav": str(wav), "ref": ref, "hyp": hyps[-1]}) + "\n")
            wer = word_error(hyps, sentences, normalizer="whisper")
            scores[name] = {"wer": wer["wer"], "ref_words": wer["ref_words"], "utterances": wer["utterances"],
                            "audio_s": round(info["audio_s"], 1),
                            "x_real_time": round(info["audio_s"] / info["synth_s"], 1)}
    return scores


def table(scores: dict[str, dict]) -> str:
    """The markdown table of docs/voices.md."""
    rows = ["| voice | WER (Whisper tiny.en) | audio (s) | synthesis (× real time) |", "|---|---:|---:|---:|"]
    rows += [f"| {name} | {s['wer']:.1%} | {s['audio_s']} | {s['x_real_time']} |" for name, s in scores.items()]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the clips, hyps.jsonl and wer.json")
    parser.add_argument("--sentences", type=int, default=20, help="sentences per condition (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle of the fortune sentences (default 0)")
    parser.add_argument("--voices", nargs="+", default=None, metavar="PREFIX",
                        help="only the conditions whose name starts with one of these (default: all), e.g. festival")
    args = parser.parse_args()
    names = [n for n in CONDITIONS if args.voices is None or any(n.startswith(p) for p in args.voices)]
    if not names:
        parser.error(f"--voices {' '.join(args.voices)}: no condition matches; conditions: {', '.join(CONDITIONS)}")
    sentences = fortune_sentences(asset_path("fortunes"))
    random.Random(args.seed).shuffle(sentences)
    sentences = sentences[: args.sentences]
    scores = transcribe(speak_all(sentences, args.out, names), sentences, args.out)
    (args.out / "wer.json").write_text(json.dumps(scores, indent=1) + "\n")
    words = next(iter(scores.values()))["ref_words"]
    print(f"{len(sentences)} sentences, {words} words\n\n{table(scores)}")


if __name__ == "__main__":
    main()
