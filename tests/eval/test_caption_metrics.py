"""Captioning metrics: parity with pycocoevalcap's reference values, references, reader errors.

The reference values are what pycocoevalcap 1.2's COCOEvalCap pipeline gives for five toy clips
with two to five references each. Tests that run the PTB tokenizer or METEOR need Java and are
skipped with a reason without it; the pure-Python scorers are also checked without Java through
the ``simple`` tokenizer, whose tokens equal PTB's on these captions.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from slamkit.eval import caption
from slamkit.eval.caption import (
    METRIC_KEYS,
    JavaNotFoundError,
    caption_scores,
    ptb_tokenize,
    read_caption_hyps,
    simple_tokenize,
)

NO_JAVA = "/nonexistent/java"
HAS_JAVA = shutil.which("java") is not None
HAS_COCO = importlib.util.find_spec("pycocoevalcap") is not None

needs_java = pytest.mark.skipif(
    not HAS_JAVA,
    reason="no Java on PATH: `apt-get install default-jre-headless` (Java >= 11) runs the PTB "
    "tokenizer and METEOR",
)
needs_coco = pytest.mark.skipif(
    not HAS_COCO, reason="pycocoevalcap is not installed (`pip install pycocoevalcap==1.2`)"
)

# The five clips of the shared reference (metrics/caption-metrics-reference.json beside ASSETS.md)
# and the values pycocoevalcap 1.2 gave for them (Java 17), copied here so the test stands alone.
CLIPS = [
    ("A dog is barking while cars pass by.", [
        "A dog barks loudly as several cars drive past.",
        "Cars go by on a road while a dog barks.",
        "A dog is barking and traffic passes in the background.",
        "Vehicles pass by and a dog barks repeatedly.",
        "A small dog barks near a busy street.",
    ]),
    ("rain falls on a metal roof", [
        "Heavy rain is falling onto a tin roof.",
        "Rain drops hit a metal roof steadily.",
        "Rain pours down on a roof made of metal.",
    ]),
    ("A man speaks and then a woman laughs.", [
        "A man is talking followed by a woman laughing.",
        "A man speaks, then a woman laughs loudly.",
    ]),
    ("birds chirping", [
        "Birds are chirping in the trees.",
        "Many birds chirp and sing outdoors.",
        "Several birds are singing while wind blows.",
        "Birds tweet in a quiet forest.",
    ]),
    ("an engine is running", [
        "Someone is typing on a computer keyboard.",
        "Keys on a keyboard are being pressed quickly.",
    ]),
]
HYPS = [hyp for hyp, _ in CLIPS]
REFS = [refs for _, refs in CLIPS]
CORPUS = {
    "bleu_1": 0.6172849192677503,
    "bleu_2": 0.49195736832838083,
    "bleu_3": 0.3928407356116109,
    "bleu_4": 0.284031719030817,
    "meteor": 0.28740024904143274,
    "rouge_l": 0.5099243061860894,
    "cider_d": 1.5836431184295972,
}
PER_CLIP = {
    "bleu_1": [0.9999999997500004, 0.7054014371737114, 0.8749999997812503, 0.13533528310127763,
               0.11809163812620803],
    "bleu_2": [0.7559289458227232, 0.5985529676111455, 0.7905694148373941, 4.279677422767414e-09,
               4.31209693678441e-09],
    "bleu_3": [0.57536958250953, 0.42324086228776764, 0.6786044039656115, 1.3533528310127772e-08,
               1.637603373844877e-11],
    "bleu_4": [0.4417918225578522, 6.800874736195394e-05, 0.49999999985818483,
               2.406639474208735e-08, 1.2001245719779727e-12],
    "meteor": [0.29910156407005434, 0.34004406229753775, 0.7485851616404373, 0.2162162162162162,
               0.05334152275951802],
    "rouge_l": [0.43571428571428567, 0.6069651741293532, 0.875, 0.45864661654135336,
                0.1732954545454545],
    "cider_d": [1.5941838394217553, 1.7658390830824624, 3.7334767419637815, 0.818703508627156,
                0.006012419052830376],
}


def _hand_tokens(text: str) -> str:
    """PTB + the pipeline's punctuation removal, for these captions only ('.' and ',' only)."""
    return text.lower().replace(".", "").replace(",", "")


@pytest.fixture(scope="module")
def ptb_result() -> dict:
    """The full PTB + METEOR pipeline on the reference clips, once; records METEOR processes."""
    if not (HAS_JAVA and HAS_COCO):
        pytest.skip("needs Java and pycocoevalcap")
    started: list[caption.MeteorProcess] = []

    class Recording(caption.MeteorProcess):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(caption, "MeteorProcess", Recording)
        result = caption_scores(HYPS, REFS, per_clip=True)
    return {"result": result, "meteor_processes": started}


@needs_java
@needs_coco
def test_parity_with_pycocoevalcap(ptb_result):
    result = ptb_result["result"]
    assert set(CORPUS) == set(METRIC_KEYS)
    for name, value in CORPUS.items():
        assert result[name] == pytest.approx(value, abs=1e-6), name
        assert result["per_clip"][name] == pytest.approx(PER_CLIP[name], abs=1e-6), name
    assert result["clips"] == 5 and result["tokenizer"] == "ptb"


@needs_java
@needs_coco
def test_one_meteor_jvm_per_call_and_it_is_closed(ptb_result):
    processes = ptb_result["meteor_processes"]
    assert len(processes) == 1
    assert processes[0]._proc.returncode is not None


@needs_java
@needs_coco
def test_ptb_tokens_match_reference():
    flat = HYPS + [r for clip in REFS for r in clip]
    assert ptb_tokenize(flat) == [_hand_tokens(t) for t in flat]


@needs_java
@needs_coco
def test_ptb_line_breaks_stay_inside_their_caption():
    # A carriage return or vertical tab would otherwise start a new line in the jar's output.
    assert ptb_tokenize(["A dog\rbarks.", "Rain\x0bfalls", "", "Birds!"]) == [
        "a dog barks", "rain falls", "", "birds"
    ]


@needs_coco
def test_pure_python_metrics_without_java():
    """BLEU, ROUGE-L and CIDEr-D need no Java with the simple tokenizer; METEOR is reported."""
    flat = HYPS + [r for clip in REFS for r in clip]
    assert simple_tokenize(flat) == [_hand_tokens(t) for t in flat]  # same tokens as PTB here
    result = caption_scores(HYPS, REFS, java=NO_JAVA, tokenizer="simple", per_clip=True)
    for name in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d"):
        assert result[name] == pytest.approx(CORPUS[name], abs=1e-12), name
        assert result["per_clip"][name] == pytest.approx(PER_CLIP[name], abs=1e-12), name
    assert "meteor" not in result
    assert "default-jre-headless" in result["unavailable"]["meteor"]


def test_missing_java_with_ptb_names_what_to_install():
    with pytest.raises(JavaNotFoundError, match="default-jre-headless") as err:
        caption_scores(["a dog"], ["a dog barks"], java=NO_JAVA)
    assert "Java >= 11" in str(err.value)


@needs_coco
def test_plain_string_reference_equals_one_item_list():
    hyps = ["a dog barks", "rain on a roof"]
    as_str = caption_scores(hyps, ["a dog is barking", "rain falls on a roof"], java=NO_JAVA,
                            tokenizer="simple")
    as_list = caption_scores(hyps, [["a dog is barking"], ["rain falls on a roof"]], java=NO_JAVA,
                             tokenizer="simple")
    assert {k: as_str[k] for k in METRIC_KEYS if k in as_str} == {
        k: as_list[k] for k in METRIC_KEYS if k in as_list
    }


@needs_coco
def test_several_references_take_the_best_match():
    # ROUGE-L uses the best LCS precision/recall over the references: adding an exact copy of the
    # hypothesis as a second reference makes that clip's ROUGE-L exactly 1.
    hyps = ["a dog barks at a cat", "rain falls"]
    one = caption_scores(hyps, [["a cat sleeps"], ["heavy rain falls"]], java=NO_JAVA,
                         tokenizer="simple", per_clip=True)
    two = caption_scores(hyps, [["a cat sleeps", "a dog barks at a cat"], ["heavy rain falls"]],
                         java=NO_JAVA, tokenizer="simple", per_clip=True)
    assert one["per_clip"]["rouge_l"][0] < 1.0
    assert two["per_clip"]["rouge_l"][0] == pytest.approx(1.0)
    assert two["per_clip"]["bleu_4"][0] == pytest.approx(1.0, abs=1e-6)
    assert two["bleu_1"] > one["bleu_1"]


@needs_coco
def test_cider_d_is_a_corpus_statistic():
    # Document frequencies come from the scored set's references, so a clip's CIDEr-D changes
    # when other clips are added: scoring in batches and averaging would give other numbers.
    whole = caption_scores(HYPS, REFS, java=NO_JAVA, tokenizer="simple", per_clip=True)
    alone = caption_scores(HYPS[:2], REFS[:2], java=NO_JAVA, tokenizer="simple", per_clip=True)
    assert alone["per_clip"]["cider_d"][0] != pytest.approx(whole["per_clip"]["cider_d"][0])


def test_unavailable_reasons_say_what_to_provide():
    reasons = caption.UNAVAILABLE
    assert set(reasons) == {"spice", "spider", "fense"}
    assert "stanford-corenlp-3.6.0" in reasons["spice"]
    assert "SPICE" in reasons["spider"] and "CIDEr-D" in reasons["spider"]
    assert "paraphrase-TinyBERT-L6-v2" in reasons["fense"]
    assert "echecker_clotho_audiocaps_base" in reasons["fense"]


@needs_coco
def test_unavailable_reported_in_result():
    result = caption_scores(["a dog"], ["a dog barks"], java=NO_JAVA, tokenizer="simple")
    for name in ("spice", "spider", "fense"):
        assert result["unavailable"][name] == caption.UNAVAILABLE[name]


def test_simple_tokenizer_splits_like_ptb():
    assert simple_tokenize(["I don't know, it's the dog's well-known toy (5.5 kg)!"]) == [
        "i do n't know it 's the dog 's well-known toy 5.5 kg"
    ]


@pytest.mark.parametrize(
    ("hyps", "refs", "error", "match"),
    [
        (["a"], [], ValueError, "1 hypotheses but 0"),
        ([], [], ValueError, "no clips"),
        (["a"], [[]], ValueError, "clip 0: empty reference list"),
        (["a"], [["ok", "  "]], ValueError, "clip 0: reference 1 is empty"),
        (["a"], [["ok", 3]], TypeError, "clip 0: reference 1 must be a string"),
        ("a", ["b"], TypeError, "not a string"),
    ],
)
def test_bad_inputs(hyps, refs, error, match):
    with pytest.raises(error, match=match):
        caption_scores(hyps, refs, java=NO_JAVA, tokenizer="simple")


def test_unknown_tokenizer():
    with pytest.raises(KeyError, match="simple"):
        caption_scores(["a"], ["b"], tokenizer="simpel")


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "hyps.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_caption_hyps(tmp_path):
    path = _write(
        tmp_path,
        json.dumps({"key": "c1", "hyp": "a dog barks", "ref": ["a dog is barking", "dog barks"]}),
        "",
        json.dumps({"key": "c2", "hyp": "", "ref": "rain falls", "extra": 1}),
    )
    hyps, refs, keys = read_caption_hyps(path)
    assert keys == ["c1", "c2"]
    assert hyps == ["a dog barks", ""]
    assert refs == [["a dog is barking", "dog barks"], ["rain falls"]]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('{"key": "b", "hyp": "x"}', "missing field 'ref'"),
        ('{"key": "b", "ref": "x"}', "missing field 'hyp'"),
        ('{"key": "b", "hyp": "x", "ref": []}', "'ref' is an empty list"),
        ('{"key": "b", "hyp": "x", "ref": ["ok", 5]}', "reference 1 in 'ref' must be a string"),
        ('{"key": "b", "hyp": "x", "ref": ["ok", " "]}', "reference 1 in 'ref' is empty"),
        ('{"key": "b", "hyp": "x", "ref": 5}', "'ref' must be a string or a list of strings"),
        ('{"key": "b", "hyp": ["x"], "ref": "y"}', "field 'hyp' must be a string, got list"),
        ('{"key": 7, "hyp": "x", "ref": "y"}', "field 'key' must be a string, got int"),
        ('{"key": "b", "hyp": "x", "ref": "y"', "invalid JSON"),
        ('["b", "x", "y"]', "expected a JSON object"),
        ('{"key": "a", "hyp": "x", "ref": "y"}', r"duplicate key 'a' \(first at .*:1\)"),
    ],
)
def test_read_caption_hyps_errors_name_file_and_line(tmp_path, line, match):
    path = _write(tmp_path, json.dumps({"key": "a", "hyp": "x", "ref": "y"}), line)
    with pytest.raises(ValueError, match=match) as err:
        read_caption_hyps(path)
    assert str(err.value).startswith(f"{path}:2:")


def test_read_caption_hyps_empty_file(tmp_path):
    path = _write(tmp_path, "", "")
    with pytest.raises(ValueError, match="no hypothesis records"):
        read_caption_hyps(path)
