"""Captioning metrics: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D as COCO caption evaluation gives them.

Audio-, music- and emotion-captioning papers report the numbers of pycocoevalcap's ``COCOEvalCap``
pipeline: every candidate and reference goes through the Stanford PTB tokenizer (lower-cased,
punctuation tokens dropped), then ``Bleu(4)``, ``Meteor`` (the METEOR 1.5 jar, ``-l en -norm``),
``Rouge`` (ROUGE-L) and ``Cider`` (coco-caption's CIDEr, i.e. CIDEr-D) score the whole set as one
corpus. :func:`caption_scores` reproduces that pipeline with pycocoevalcap's own scorers and jars,
with three differences that only matter where the original breaks:

- the tokenizer's temporary file goes to the system temp directory, not into the installed package
  (``COCOEvalCap`` fails on a read-only install);
- the scorers are called one by one: ``COCOEvalCap.evaluate()`` also builds SPICE, which downloads
  Stanford CoreNLP at run time;
- line breaks inside a caption become spaces before tokenising (the original only replaces ``\\n``;
  a ``\\r`` would shift every later caption onto the wrong clip), and the tokenizer's output is
  checked to have one line per caption.

CIDEr-D's document frequencies come from the references of the scored set, so the metrics are only
meaningful over the whole evaluation set, never averaged over batches. Java (>= 11) runs the PTB
tokenizer and METEOR; :func:`find_java` says what to install when it is missing. The ``simple``
tokenizer (pure Python) avoids the PTB jar but its numbers are not comparable to papers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from slamkit.eval.hyps import METRICS, HypRecord, read_hyp_records
from slamkit.registry import Registry

JAVA_HINT = (
    "install Java >= 11 (Debian/Ubuntu: `apt-get install default-jre-headless`) "
    "or pass the path of the java executable"
)
COCO_HINT = "captioning metrics need pycocoevalcap 1.2: `pip install pycocoevalcap==1.2`"

# Tokens the COCO pipeline drops after PTB tokenisation. The list is the original's, including its
# upper-case bracket names that never match lower-cased output (so "-lrb-" survives, as in papers).
PTB_PUNCTUATION = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
     "...", ";"]
)

UNAVAILABLE: dict[str, str] = {
    "spice": (
        "SPICE needs Stanford CoreNLP 3.6.0 (stanford-corenlp-3.6.0.jar and "
        "stanford-corenlp-3.6.0-models.jar, from stanford-corenlp-full-2015-12-09.zip) beside "
        "pycocoevalcap's spice-1.0.jar; pycocoevalcap downloads them at run time and slamkit "
        "never downloads, so local copies of those two jars are needed"
    ),
    "spider": (
        "SPIDEr is the mean of CIDEr-D and SPICE, and SPICE is unavailable (it needs local "
        "copies of the Stanford CoreNLP 3.6.0 jars)"
    ),
    "fense": (
        "FENSE needs two local models: the Sentence-BERT model paraphrase-TinyBERT-L6-v2 "
        "(sentence-transformers) and the fluency error detector "
        "echecker_clotho_audiocaps_base.ckpt (github.com/blmoistawinde/fense, release V0.1, "
        "with the bert-base-uncased tokenizer); slamkit never downloads them"
    ),
}

METRIC_KEYS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider_d")


class JavaNotFoundError(RuntimeError):
    """No usable ``java`` executable: the PTB tokenizer and METEOR cannot run."""


def find_java(java: str | None = None) -> str:
    """Path of the Java executable: ``java`` (a path or a name on PATH) if given, else ``java``.

    Raises:
        JavaNotFoundError: naming what to install.
    """
    name = java or "java"
    found = shutil.which(name)
    if found is None:
        where = f"{java!r} is not an executable" if java else "no `java` on PATH"
        raise JavaNotFoundError(
            f"captioning metrics need Java for the PTB tokenizer and METEOR, but {where}: "
            f"{JAVA_HINT}"
        )
    return found


def _coco_file(*parts: str) -> Path:
    """A file inside the installed pycocoevalcap package (its jars and data)."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(COCO_HINT)
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (incomplete install); {COCO_HINT}")
    return path


def _one_line(text: str) -> str:
    """Every line break (``\\n``, ``\\r``, ``\\v``, U+2028, ...) becomes a space."""
    return " ".join(text.splitlines()) if text else text


def _drop_punctuation(line: str) -> str:
    """Join tokens, minus the pipeline's punctuation tokens (the original splits on one space)."""
    return " ".join(w for w in line.rstrip().split(" ") if w not in PTB_PUNCTUATION)


TokenizeFn = Callable[[Sequence[str], str | None], list[str]]
TOKENIZERS: Registry[TokenizeFn] = Registry("caption tokenizer")


@TOKENIZERS.register("ptb")
def ptb_tokenize(texts: Sequence[str], java: str | None = None) -> list[str]:
    """Tokenise like ``PTBTokenizer.tokenize``: Stanford PTB jar, lower-cased, punctuation dropped.

    One JVM for all ``texts`` (the tokenizer works line by line, so batching changes nothing).
    """
    jar = _coco_file("tokenizer", "stanford-corenlp-3.4.1.jar")
    java_exe = find_java(java)
    with tempfile.TemporaryDirectory(prefix="slamkit-ptb-") as tmp:
        source = Path(tmp) / "captions.txt"
        source.write_bytes("\n".join(_one_line(t) for t in texts).encode("utf-8"))
        cmd = [java_exe, "-Dfile.encoding=UTF-8", "-cp", str(jar),
               "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase", str(source)]
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"the PTB tokenizer ({jar.name}) failed with exit code {done.returncode}: "
            f"{done.stderr.decode('utf-8', 'replace').strip()[-2000:]}"
        )
    lines = done.stdout.decode("utf-8").split("\n")
    if len(lines) < len(texts) or any(line.strip() for line in lines[len(texts):]):
        raise RuntimeError(
            f"the PTB tokenizer returned {len(lines)} lines for {len(texts)} captions; "
            "the captions cannot be matched to its output"
        )
    return [_drop_punctuation(line) for line in lines[: len(texts)]]


_CLITIC = re.compile(r"(n't|'(?:s|re|ve|ll|d|m))\b")
_SIMPLE_TOKEN = re.compile(
    r"n't|'(?:s|re|ve|ll|d|m)\b|\d+(?:[.,]\d+)+|[^\W_]+(?:[-'][^\W_]+)*|\.\.\.|--|[^\w\s]|_+"
)
_SIMPLE_DROP = PTB_PUNCTUATION | {'"', "(", ")", "[", "]", "{", "}"}


@TOKENIZERS.register("simple")
def simple_tokenize(texts: Sequence[str], java: str | None = None) -> list[str]:
    """Pure-Python approximation of the PTB pipeline (no Java); scores are NOT comparable to papers.

    Lower-cases, splits clitics as PTB does ("don't" -> "do n't", "dog's" -> "dog 's"), keeps
    hyphenated words whole, and drops punctuation and brackets. ``java`` is ignored.
    """
    out = []
    for text in texts:
        spaced = _CLITIC.sub(r" \1", _one_line(text).lower())
        out.append(" ".join(t for t in _SIMPLE_TOKEN.findall(spaced) if t not in _SIMPLE_DROP))
    return out


class MeteorProcess:
    """The METEOR 1.5 jar in ``-stdio`` mode, as pycocoevalcap drives it, in a ``with`` block.

    Starting the JVM costs ~10 s, so one process serves a whole evaluation; leaving the block
    closes its input and waits for it (killing it after 10 s).
    """

    def __init__(self, java: str | None = None) -> None:
        jar = _coco_file("meteor", "meteor-1.5.jar")
        _coco_file("meteor", "data", "paraphrase-en.gz")
        cmd = [find_java(java), "-Dfile.encoding=UTF-8", "-Xmx2G", "-jar", str(jar),
               "-", "-", "-stdio", "-l", "en", "-norm"]
        # stderr goes to a file: a pipe nobody reads could fill up and stall the JVM.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, cwd=jar.parent, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr)

    def __enter__(self) -> MeteorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the JVM (idempotent)."""
        if self._proc.stdin and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout:
            self._proc.stdout.close()
        self._stderr.close()

    def _failure(self, what: str) -> RuntimeError:
        self._stderr.seek(0)
        tail = self._stderr.read().decode("utf-8", "replace").strip()[-2000:]
        return RuntimeError(f"METEOR (meteor-1.5.jar) {what}; its error output: {tail or '(none)'}")

    def _ask(self, line: str) -> str:
        """Send one line, return the jar's one-line answer."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(line.encode("utf-8") + b"\n")
            self._proc.stdin.flush()
        except OSError:
            raise self._failure("stopped accepting input") from None
        answer = self._proc.stdout.readline()
        if not answer:
            raise self._failure(f"exited (code {self._proc.poll()})")
        return answer.decode("utf-8").strip()

    def _read_float(self) -> float:
        assert self._proc.stdout is not None
        answer = self._proc.stdout.readline()
        if not answer:
            raise self._failure(f"exited (code {self._proc.poll()})")
        return float(answer.strip())

    def score(
        self, hyps: Sequence[str], refs: Sequence[Sequence[str]]
    ) -> tuple[float, list[float]]:
        """Corpus METEOR (the jar's aggregate over summed statistics) and one score per clip."""
        stats = []
        for hyp, clip_refs in zip(hyps, refs):
            # As pycocoevalcap: "|||" separates fields, so it is removed from the hypothesis
            # (and, here, from references too, where it would corrupt the protocol line).
            hyp = hyp.replace("|||", "").replace("  ", " ")
            fields = ["SCORE", *(r.replace("|||", "") for r in clip_refs), hyp]
            stats.append(self._ask(" ||| ".join(fields)))
        per_clip = [float(self._ask(" ||| ".join(["EVAL", *stats])))]
        per_clip += [self._read_float() for _ in stats[1:]]
        return self._read_float(), per_clip


def _as_ref_lists(
    hyps: Sequence[str], refs: Sequence[str | Sequence[str]]
) -> list[list[str]]:
    """Check the inputs line up; a plain string reference becomes a one-item list."""
    if isinstance(hyps, str) or isinstance(refs, str):
        raise TypeError("hyps and refs must be sequences (one item per clip), not a string")
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference entries")
    if not hyps:
        raise ValueError("no clips to score")
    out = []
    for i, (hyp, ref) in enumerate(zip(hyps, refs)):
        if not isinstance(hyp, str):
            raise TypeError(f"clip {i}: hypothesis must be a string, got {type(hyp).__name__}")
        ref_list = [ref] if isinstance(ref, str) else list(ref)
        if not ref_list:
            raise ValueError(f"clip {i}: empty reference list")
        for j, r in enumerate(ref_list):
            if not isinstance(r, str):
                raise TypeError(f"clip {i}: reference {j} must be a string, got {type(r).__name__}")
            if not r.strip():
                raise ValueError(f"clip {i}: reference {j} is empty")
        out.append(ref_list)
    return out


def _tokenize_all(
    hyps: Sequence[str], refs: list[list[str]], tokenizer: str, java: str | None
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Tokenise candidates and references in one call; returns pycocoevalcap's (gts, res) dicts."""
    flat = list(hyps) + [r for clip in refs for r in clip]
    tokens = TOKENIZERS.get(tokenizer)(flat, java)
    res = {i: [tokens[i]] for i in range(len(hyps))}
    gts: dict[int, list[str]] = {}
    at = len(hyps)
    for i, clip in enumerate(refs):
        gts[i] = tokens[at : at + len(clip)]
        at += len(clip)
    return gts, res


def _pure_python_scores(gts: dict[int, list[str]], res: dict[int, list[str]]) -> dict[str, Any]:
    """BLEU-1..4, ROUGE-L and CIDEr-D from pycocoevalcap's Python scorers: corpus and per clip."""
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
    except ImportError:
        raise ImportError(COCO_HINT) from None
    # verbose=0 keeps BLEU's statistics off stdout (the CLI prints a single JSON object there).
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, bleu_clips = Bleu(4).compute_score(gts, res, verbose=0)
        rouge, rouge_clips = Rouge().compute_score(gts, res)
        cider, cider_clips = Cider().compute_score(gts, res)
    corpus = {f"bleu_{n + 1}": float(bleu[n]) for n in range(4)}
    corpus.update(rouge_l=float(rouge), cider_d=float(cider))
    clips = {f"bleu_{n + 1}": [float(s) for s in bleu_clips[n]] for n in range(4)}
    clips.update(rouge_l=[float(s) for s in rouge_clips], cider_d=[float(s) for s in cider_clips])
    return {"corpus": corpus, "clips": clips}


def caption_scores(
    hyps: Sequence[str],
    refs: Sequence[str | Sequence[str]],
    *,
    java: str | None = None,
    tokenizer: str = "ptb",
    per_clip: bool = False,
) -> dict[str, Any]:
    """Score captions over the whole set as one corpus, as pycocoevalcap 1.2's COCOEvalCap does.

    Args:
        hyps: one generated caption per clip.
        refs: per clip, one reference string or a list of reference captions.
        java: the Java executable (path or name); default ``java`` on PATH.
        tokenizer: ``"ptb"`` (default: the Stanford PTB jar, numbers comparable to papers) or
            ``"simple"`` (pure Python, approximate; METEOR still needs Java).
        per_clip: also return ``"per_clip": {metric: [score per clip]}``.

    Returns:
        ``{"bleu_1" … "bleu_4", "meteor", "rouge_l", "cider_d", "clips", "tokenizer",
        "unavailable": {name: reason}}``: values as pycocoevalcap reports them (BLEU, METEOR,
        ROUGE-L in [0, 1]; CIDEr-D includes coco-caption's x10 and is not scaled further).
        With ``tokenizer="simple"`` and no Java, METEOR is listed under ``unavailable`` instead.

    Raises:
        JavaNotFoundError: Java is needed (PTB tokenizer, METEOR) and missing.
        ValueError / TypeError: inputs that do not line up, empty reference lists or references.
    """
    ref_lists = _as_ref_lists(hyps, refs)
    TOKENIZERS.get(tokenizer)
    unavailable = dict(UNAVAILABLE)
    try:
        java_exe: str | None = find_java(java)
    except JavaNotFoundError as err:
        if tokenizer == "ptb":
            raise
        java_exe, unavailable["meteor"] = None, str(err)
    gts, res = _tokenize_all(hyps, ref_lists, tokenizer, java_exe)
    scores = _pure_python_scores(gts, res)
    if java_exe is not None:
        with MeteorProcess(java_exe) as meteor:
            value, meteor_clips = meteor.score([res[i][0] for i in res], [gts[i] for i in gts])
        scores["corpus"]["meteor"] = value
        scores["clips"]["meteor"] = meteor_clips
    result: dict[str, Any] = {k: scores["corpus"][k] for k in METRIC_KEYS if k in scores["corpus"]}
    result.update(clips=len(ref_lists), tokenizer=tokenizer, unavailable=unavailable)
    if per_clip:
        result["per_clip"] = {k: scores["clips"][k] for k in METRIC_KEYS if k in scores["clips"]}
    return result


def read_caption_hyps(path: str | Path) -> tuple[list[str], list[list[str]], list[str]]:
    """Read a caption hypothesis JSONL file into ``(hyps, refs, keys)``.

    Each line is ``{"key": str, "hyp": str, "ref": str | [str, ...]}``; a single reference string
    becomes a one-item list. Blank lines are skipped; keys must be unique.

    Raises:
        ValueError: naming the file and line (invalid JSON, missing field, non-string, empty or
            empty-list reference, duplicate key), or the file when it holds no records.
    """
    records = read_hyp_records(path)  # JSON, fields, types, duplicate keys, empty file
    refs = [_reference_list(rec) for rec in records]
    return [rec.hyp for rec in records], refs, [rec.key for rec in records]


def _reference_list(rec: HypRecord) -> list[str]:
    """``rec.ref`` as a list of captions; a blank caption fails naming the line."""
    ref = [rec.ref] if isinstance(rec.ref, str) else list(rec.ref)
    for i, caption in enumerate(ref):
        if not caption.strip():
            raise ValueError(f"{rec.where}: reference {i} in 'ref' is empty")
    return ref


def score_caption_file(
    path: str | Path, *, java: str | None = None, tokenizer: str = "ptb"
) -> dict[str, Any]:
    """Read ``path`` with :func:`read_caption_hyps` and score it with :func:`caption_scores`."""
    hyps, refs, _ = read_caption_hyps(path)
    return caption_scores(hyps, refs, java=java, tokenizer=tokenizer)


@METRICS.register("caption")
def caption_metric(records: Sequence[HypRecord], normalizer: str) -> dict[str, Any]:
    """The ``caption`` metric (:data:`slamkit.eval.hyps.METRICS`): caption scores of already-read records.

    ``normalizer`` is ignored: the COCO pipeline's own tokenisation is the normalisation.
    """
    return caption_scores([r.hyp for r in records], [r.ref for r in records])
