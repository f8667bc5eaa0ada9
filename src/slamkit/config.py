"""Typed configuration: dataclass schema, YAML loading, ``a.b=c`` overrides, dumping.

One :class:`Config` describes a whole run (model, data, train, decode). It is read from YAML,
then patched with command-line overrides (``train.max_steps=100``; SLAM-LLM's ``++key=value``
form is accepted too). An unknown key fails with its dotted name and the closest valid keys; a
value of the wrong type fails with the key and the expected type. ``dump_config`` writes the
resolved config, which is enough to rebuild the model.

Every field carries a ``help`` string in its metadata. :func:`config_reference` turns the schema
into (key, type, default, help) rows, which ``slamkit config`` prints as a list;
:func:`config_reference_markdown` renders the same rows as Markdown tables, one per section
(``slamkit config --markdown``). In docs/config.md, the "Config reference" tables are that output,
kept between the :data:`CONFIG_REFERENCE_BEGIN` and :data:`CONFIG_REFERENCE_END` marker comments;
``slamkit config --write-readme docs/config.md`` (:func:`update_config_reference`) rewrites the block in
place, and tests/test_config.py fails when that block differs from the schema.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the key."""


def _f(default: Any, help: str) -> Any:
    """A dataclass field with a help string (and a safe default for lists)."""
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata={"help": help})
    return field(default=default, metadata={"help": help})


Trainability = Literal["frozen", "lora", "full"]


@dataclass
class EncoderConfig:
    """The audio encoder (registry: ``slamkit.models.encoders.base.ENCODERS``)."""

    name: str = _f("whisper", "Registered encoder: whisper | hf_ssl | wav2vec2 | hubert | wavlm | data2vec_audio | beats | eat | emotion2vec | mert | clap | ast | av_hubert | av_hubert_av (lip video, docs/vsr.md) (`slamkit list encoders`).")
    path: str | None = _f(None, "Pretrained weights in the encoder's official format (Whisper: HF directory, faster-whisper/CTranslate2 model.bin or OpenAI .pt; BEATs/EAT/emotion2vec: their .pt; the others: HF directories; see README \"Encoders\"), or asset:NAME; null builds random weights from `preset`.")
    preset: str = _f("tiny", "Architecture preset, built with random weights when `path` is null (`slamkit list encoders` shows them).")
    model_type: str = _f("hubert", "hf_ssl only: wav2vec2 | hubert | wavlm | data2vec-audio (used with `preset`; or name the family member directly in `name`).")
    trainable: Trainability = _f("frozen", "frozen | lora | full.")
    pad_to_30s: bool = _f(False, "whisper only: pad every clip to 30 s as original Whisper does (false runs on the real length).")
    layer: int | None = _f(None, "Use this hidden layer's output (negative counts from the top); null uses the last layer.")
    layer_sum: bool = _f(False, "Self-supervised encoders: a learned softmax-weighted sum of all hidden layers instead of `layer` (its weights train; the feature cache is then off).")
    unfreeze_top: int = _f(0, "Transformer encoders: also train the top N layers in full (on top of `trainable: frozen` or `lora`).")
    init_seed: int = _f(0, "Seed for random weights, so a run directory rebuilds the same random encoder.")
    cache_dir: str | None = _f(None, "Directory for cached outputs of a frozen encoder; null disables the cache.")
    cache_dtype: Literal["float32", "float16"] = _f("float16", "Storage precision of cached features.")


@dataclass
class ProjectorConfig:
    """The projector from encoder frames to LLM embeddings (registry: ``PROJECTORS``)."""

    name: str = _f("linear", "Registered projector: linear | conv1d | qformer | mlp | hybrid (global queries, then time-ordered frame groups; docs/projectors.md).")
    k: int = _f(5, "Downsampling: frames concatenated (linear, mlp, hybrid's time branch) or conv stride (conv1d).")
    hidden: int = _f(2048, "Hidden size of the projector MLP (hybrid: of its time branch; qformer: width of the queries, e.g. 768).")
    num_queries: int = _f(64, "qformer: learnable queries (per window when `window` is set); hybrid: global queries placed before the time-ordered frames.")
    num_layers: int = _f(2, "qformer, hybrid: cross-attention layers of the queries.")
    num_heads: int = _f(8, "qformer, hybrid: attention heads of the queries.")
    query_hidden: int | None = _f(None, "hybrid: width of the global queries (their attention and 4x FFN run at this width); null: the encoder's width.")
    window: int | None = _f(None, "qformer: frames per window for the windowed, time-ordered variant; null attends to all frames.")
    dropout: float = _f(0.0, "Dropout inside the projector.")
    trainable: Literal["frozen", "full"] = _f("full", "frozen | full (the projector is small and trained in full; LoRA applies to the encoder and the LLM).")
    init_seed: int = _f(0, "Seed for the projector's initial weights.")


@dataclass
class LoraConfig:
    """LoRA settings, applied through peft to every part whose trainability is `lora`."""

    r: int = _f(8, "LoRA rank.")
    alpha: int = _f(32, "LoRA alpha (scale = alpha / r).")
    dropout: float = _f(0.05, "Dropout on the LoRA input.")
    target_modules: list[str] = _f(["q_proj", "v_proj"], "Module names LoRA wraps in the LLM.")
    encoder_target_modules: list[str] = _f(["q_proj", "v_proj"], "Module names LoRA wraps in the encoder.")


@dataclass
class LLMConfig:
    """The causal LLM and how prompts are built."""

    path: str | None = _f(None, "A Hugging Face directory, a .gguf file (dequantised once, then cached), asset:NAME/FILE, or a hub id (a hub id downloads); null builds `preset`.")
    preset: str = _f("tiny", "Architecture preset, built with random weights when `path` is null (tiny: 2-layer Llama + byte tokenizer; `slamkit list llm-presets`).")
    trainable: Trainability = _f("lora", "frozen | lora | full.")
    dtype: Literal["float32", "bfloat16", "float16"] = _f("float32", "Weights dtype when loading: float32 | bfloat16 | float16.")
    use_chat_template: bool = _f(True, "Build the prompt with the tokenizer's chat template when it has one.")
    system_prompt: str | None = _f("", "System message for chat templates; null lets the template insert its default.")
    plain_template: str = _f("USER: {content}\nASSISTANT: ", "Template when no chat template is used; {content} is audio + prompt.")
    audio_position: Literal["before", "after"] = _f("before", "Audio before or after the prompt text.")
    audio_token: str = _f("<|audio|>", "Placeholder token added to the tokenizer for audio positions.")
    init_seed: int = _f(0, "Seed for random weights of a preset LLM.")
    full_logits: bool = _f(False, "Run the output head over every position, then keep the target positions (what the original SLAM-LLM computes: the same loss, more work; `slamkit bench train` uses it for the original's path). false: the head runs only where a target is predicted.")


@dataclass
class ModelConfig:
    """Encoder -> projector -> LLM."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class DataConfig:
    """Manifests and batching."""

    train: str | None = _f(None, "Training manifest (JSONL).")
    valid: str | None = _f(None, "Validation manifest (JSONL); null skips validation.")
    task: str = _f("asr", "The run's task for records without a `task` field: asr | asr_biasing | aac | sec | mc | st | vsr (its default prompt and metric).")
    prompt: str | None = _f(None, "Prompt for records with neither `prompt` nor `task`; null uses the task's default prompt. `{field}` placeholders are filled from the record.")
    biasing_list: str | None = _f(None, "Contextual biasing (prompts with `{biasing_words}`, task asr_biasing): a one-word-per-line list such as LibriSpeech's all_rare_words.txt. Each utterance gets its own `biasing_words` (else the reference's words found in the list) plus `biasing_distractors` words drawn from it, fresh every training epoch. null: the records' `biasing_words` as they are.")
    biasing_distractors: int = _f(100, "Distractors drawn from `biasing_list` per utterance (100: the smallest published LibriSpeech test lists, which go up to 2000).")
    biasing_seed: int = _f(0, "Seed of the distractors in decoding and validation (training draws from `train.seed` and the epoch).")
    biasing_case: Literal["keep", "upper", "lower"] = _f("keep", "Case of the biasing words in the prompt: keep | upper (SLAM-LLM's, like LibriSpeech's upper-case transcripts) | lower.")
    batch_size: int = _f(8, "Maximum utterances per batch.")
    batch_seconds: float | None = _f(None, "Audio-seconds budget per batch (duration bucketing); null uses `batch_size` only.")
    bucket: bool = _f(True, "Group clips of similar duration into batches (less padding).")
    short_first_epochs: int = _f(0, "Curriculum: the first N training epochs run from the shortest clips to the longest (aligns a fresh projector sooner); later epochs are shuffled buckets.")
    max_seconds: float = _f(30.0, "Longer clips are skipped (and counted) in training.")
    min_seconds: float = _f(0.05, "Shorter clips are skipped (and counted) in training.")
    max_target_tokens: int = _f(512, "Training and validation skip (and count) a record whose target is longer than this many LLM tokens (a runaway transcript would take the memory of a whole batch); 0: no limit.")
    text_records: Literal["refuse", "mixed", "only"] = _f("refuse", "Text-only records (manifest lines without `source`, or with `\"source\": null`) in training and validation: refuse (such a line is a bad line, skipped and named) | mixed (audio and text records together; a text record trains the LLM on its text with no audio, the encoder never sees it) | only (every record text-only; a line with `source` is a bad line). Decoding always needs audio. See docs/text-only.md.")
    num_workers: int = _f(0, "DataLoader worker processes for audio loading.")
    prefetch_factor: int = _f(2, "Batches each DataLoader worker prepares ahead of the training step (with `num_workers` > 0), so audio decoding overlaps GPU compute.")


@dataclass
class TrainConfig:
    """The training loop."""

    output_dir: str = _f("runs/default", "Run directory: config.yaml, metrics.jsonl, checkpoints/, tensorboard/.")
    max_steps: int = _f(1000, "Optimizer steps to train.")
    max_minutes: float | None = _f(None, "Wall-clock budget: stop (with a final checkpoint) once training has run this long; null: no limit.")
    lr: float = _f(1e-4, "Peak learning rate (AdamW).")
    projector_lr: float | None = _f(None, "Learning rate for the projector; null uses `lr`.")
    lora_lr: float | None = _f(None, "Learning rate for LoRA weights; null uses `lr`.")
    ctc_weight: float = _f(0.0, "Weight of an auxiliary CTC loss that asks the projector's outputs, scored against the LLM's token embeddings, to spell the transcript (no new parameters); 0 turns it off. On the demo recipe it sped the start (validation loss 3.55 vs 3.66 at step 1000) but not the alignment (3.52 vs 3.40 at step 1400).")
    prealign_steps: int = _f(0, "Pre-alignment: the first N optimizer steps train only the projector, with no LLM pass, to emit the embeddings of the transcript's tokens spread evenly over each clip (squared distance to the LLM's embedding table, averaged per clip); then the optimizer state is reset and ordinary training starts with its own warmup. 0 turns it off. For speech-to-text tasks; the demo recipes use 1000. See the README's \"Pre-alignment\".")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    betas: list[float] = _f([0.9, 0.999], "AdamW betas.")
    warmup_steps: int = _f(100, "Linear warmup steps.")
    schedule: Literal["cosine", "linear", "constant"] = _f("cosine", "Decay after warmup.")
    min_lr_ratio: float = _f(0.0, "Final learning rate as a fraction of the peak.")
    cooldown_minutes: float = _f(0.0, "With `max_minutes`: the last this-many minutes of the time budget anneal the learning rate linearly from its current value to `min_lr_ratio` of it (warmup-stable-decay for a run whose length is a time, not a step count: `schedule: constant` then holds the peak until the cooldown). When the time left first drops to this, the run fixes the cooldown's length at 95 % of the steps its pace over the last this-many minutes fits in the time left, and ends after them (the checkpoint keeps both, so resume stays exact); the time budget still stops it if the pace drops. 0: off. Without `max_minutes` it does nothing. See docs/checkpoints.md.")
    grad_accum: int = _f(1, "Micro-batches per optimizer step; the loss is normalised over the whole window (by its target tokens; during pre-alignment by its clips).")
    clip_grad: float = _f(1.0, "Gradient-norm clipping; 0 disables.")
    max_nonfinite_steps: int = _f(5, "A step whose loss or gradient is not finite (NaN/Inf) updates nothing and is logged (`nonfinite` in metrics.jsonl, with the batch's keys in the log); this many in a row stop the run with the keys, before any checkpoint of them is written. 0: never stop.")
    precision: Literal["fp32", "bf16", "fp16"] = _f("fp32", "Autocast precision (fp16 uses a loss scaler).")
    device: str = _f("auto", "auto | cpu | cuda | cuda:N | mps.")
    activation_checkpointing: bool = _f(False, "Recompute each LLM decoder layer's activations (and each encoder layer's, when the encoder trains) in the backward pass instead of storing them: less memory for about a third more compute; losses unchanged.")
    strategy: Literal["auto", "single", "ddp", "fsdp"] = _f("auto", "How several processes train together under torchrun: ddp (a replica per process, gradients of the trainable parameters all-reduced once per optimizer step); fsdp (FSDP2: every encoder and LLM decoder layer sharded across the processes, frozen weights included, gradients reduced in fp32: for a base too large for one device); single (one process only); auto = ddp when WORLD_SIZE > 1, else single. N processes with data.batch_size=b make the same updates as one with data.batch_size=N*b.")
    seed: int = _f(42, "Seed for shuffling, dropout and everything random in training.")
    log_every: int = _f(10, "Steps between metric log lines.")
    valid_every: int = _f(200, "Steps between validations; 0 validates only at the end.")
    save_every: int = _f(200, "Steps between checkpoints (a final one is always written).")
    keep_last: int = _f(2, "Checkpoints kept besides the best.")
    resume: bool = _f(False, "Continue from the latest checkpoint in `output_dir`.")
    init_from: str | None = _f(None, "Start a new run from another run's trainable weights (a checkpoint directory, or a run directory: its latest checkpoint) with a fresh optimizer, schedule and data order, e.g. to go on training on new data; ignored when resuming.")
    tensorboard: bool = _f(True, "Also log metrics to TensorBoard.")


@dataclass
class DecodeConfig:
    """Generation settings."""

    batch_size: int = _f(8, "Utterances per decoding batch.")
    precision: Literal["fp32", "bf16", "fp16"] = _f("fp32", "Autocast precision of decoding (fp16 on CUDA only); greedy output equals fp32's only where the arithmetic allows.")
    beam_size: int = _f(1, "1 is greedy; >1 is beam search.")
    max_new_tokens: int = _f(128, "Maximum generated tokens per utterance.")
    repetition_penalty: float = _f(1.0, "Penalty >1 discourages repeated tokens.")
    no_repeat_ngram_size: int = _f(0, "Forbid repeating n-grams of this size; 0 disables.")
    length_penalty: float = _f(1.0, "Beam search length penalty.")
    checkpoint: str = _f("best", "Which checkpoint to decode with: best | latest | a checkpoint directory.")
    rerank: str | None = _f(None, "Re-rank candidates and keep the best (SLAM-AAC's CLAP-Refine): null (off) | clap (cosine similarity of CLAP audio and text embeddings; needs `rerank_model`).")
    rerank_model: str | None = _f(None, "Local Hugging Face ClapModel directory (weights, tokenizer, preprocessor_config.json) or asset:NAME, for `rerank: clap`.")
    rerank_candidates: int = _f(8, "Candidates per clip when re-ranking: one beam search of max(N, beam_size) beams gives its N best distinct texts.")
    segment: Literal["vad", "utterance", "fixed", "overlap", "windowed"] = _f("vad", "How clips longer than the segment window are split (see docs/longform.md): vad (silero-vad speech spans merged up to the window; silence between segments dropped) | utterance (the same spans, each its own segment, never merged; docs/longform.md measures when it helps) | fixed (contiguous windows, each cut at the quietest 100 ms before the limit) | overlap (windows sharing `segment_overlap` seconds, cut blindly; the words transcribed twice are kept once) | windowed (not split: the Whisper encoder runs the clip in 30 s windows whose frames are concatenated, and the LLM writes one transcript; `max_new_tokens` then counts per segment window of audio). Shorter clips are decoded whole.")
    max_segment_seconds: float | None = _f(None, "Longest segment in seconds; null = the encoder's input window (30 s for Whisper), else 30. May not exceed the encoder's window.")
    segment_overlap: float = _f(1.0, "Seconds before the window's end in which `fixed` segmentation looks for the quietest cut point; with `overlap`, the seconds consecutive windows share (at most half a window).")
    merge_pause: float | None = _f(None, "With `vad`: the longest pause (seconds, between the speech) across which two speech spans may join one segment; null = any pause, as long as the segment fits the window. A model trained on single sentences may read a segment holding two of them as one: 0.8 keeps sentences separated by clear pauses apart while still joining the pieces silero cuts at shorter pauses (the recipes that decode in 6 s segments and the shipped reference adapter set it; docs/longform.md measures it). Values under 0.4 s (twice the 0.2 s speech padding) join nothing, like `utterance`.")


@dataclass
class Config:
    """A whole run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)


# ---------------------------------------------------------------------------------------------
# Type checking of values
# ---------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"list of {_type_name(get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints are accepted for floats)."""
    origin = get_origin(tp)
    if origin is Literal:
        if value in get_args(tp):
            return value
    elif origin in (Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
    elif origin is list:
        if isinstance(value, (list, tuple)):
            return [_coerce(v, get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value)]
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            # YAML 1.1 reads "1e-3" (no dot) as a string; users mean a number.
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"config key '{key}' expects {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted leaf key of a config dataclass."""
    keys = []
    for name, tp in _hints(cls).items():
        if dataclasses.is_dataclass(tp):
            keys.extend(_all_keys(tp, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _unknown_key(key: str, cls: type) -> ConfigError:
    valid = _all_keys(Config)
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    if not close:
        leaf = key.rsplit(".", 1)[-1]
        close = [k for k in valid if k.rsplit(".", 1)[-1] == leaf][:3]
    hint = f"; closest valid keys: {', '.join(close)}" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint}")


def _build(cls: type, data: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from a nested dict, checking keys and types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config key '{prefix.rstrip('.') or '<root>'}' expects a mapping, got {data!r}")
    hints = _hints(cls)
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in hints:
            raise _unknown_key(key, cls)
        tp = hints[name]
        kwargs[name] = _build(tp, value, f"{key}.") if dataclasses.is_dataclass(tp) else _coerce(value, tp, key)
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------
# Loading, overrides, dumping
# ---------------------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``a.b=value`` (or ``++a.b=value`` / ``+a.b=value``) into key and YAML-parsed value."""
    body = text.lstrip("+")
    if "=" not in body:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = body.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key '{key}': '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or start from defaults), apply overrides, check keys and types."""
    tree: dict = {}
    if path is not None:
        from slamkit.recipe_files import RecipeNotFoundError, resolve_recipe

        try:  # a file, else a packaged recipe by name (recipes/NAME.yaml, NAME.yaml, NAME)
            path = resolve_recipe(path)
        except RecipeNotFoundError as exc:
            raise ConfigError(str(exc)) from None
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
    for text in overrides or []:
        key, value = parse_override(text)
        _set_dotted(tree, key, value)
    try:
        return _build(Config, tree, "")
    except ConfigError as exc:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{exc}") from None


def config_to_dict(cfg: Any) -> dict:
    """A plain nested dict of a config dataclass."""
    return dataclasses.asdict(cfg)


def dump_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (keys in schema order)."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def _default_text(value: Any) -> str:
    """A default as one line of YAML (a string with line breaks as a double-quoted YAML string)."""
    if isinstance(value, str) and "\n" in value:
        return json.dumps(value)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").removesuffix("...")


def config_reference() -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for every leaf key in schema order, for ``slamkit config`` and the docs."""
    rows = []

    def walk(cls: type, prefix: str) -> None:
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}{f.name}.")
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            rows.append((f"{prefix}{f.name}", _type_name(tp), _default_text(default), f.metadata.get("help", "")))

    walk(Config, "")
    return rows


# ---------------------------------------------------------------------------------------------
# The Markdown reference (the "Config reference" block of docs/config.md)
# ---------------------------------------------------------------------------------------------

#: The marker comments around the generated block in docs/config.md.
CONFIG_REFERENCE_BEGIN = "<!-- BEGIN CONFIG REFERENCE (generated: slamkit config --write-readme docs/config.md) -->"
CONFIG_REFERENCE_END = "<!-- END CONFIG REFERENCE -->"


def _cell(text: str) -> str:
    """Table-cell text: one line, pipes escaped (also inside code spans, as GitHub's tables need)."""
    return " ".join(text.split("\n")).replace("|", "\\|")


def config_reference_markdown() -> str:
    """The config reference as Markdown: per section (``model.encoder``, …, ``decode``, in schema
    order) a bold title and a table of key | type | default | description. Deterministic: the
    same schema gives the same text, ending in one newline."""
    sections: dict[str, list[str]] = {}
    for key, tp, default, help_text in config_reference():
        section = key.rpartition(".")[0] or "(top level)"
        sections.setdefault(section, []).append(
            f"| `{key}` | {_cell(tp)} | `{_cell(default)}` | {_cell(help_text)} |")
    header = ["| key | type | default | description |", "|---|---|---|---|"]
    return "\n\n".join("\n".join([f"**{name}**", "", *header, *rows]) for name, rows in sections.items()) + "\n"


def update_config_reference(text: str) -> str:
    """``text`` (a README) with the block between the marker comments replaced by
    :func:`config_reference_markdown`; the text is returned unchanged when the block is current.
    Raises ValueError unless each marker occurs exactly once, BEGIN before END."""
    if text.count(CONFIG_REFERENCE_BEGIN) != 1 or text.count(CONFIG_REFERENCE_END) != 1:
        raise ValueError(f"expected one {CONFIG_REFERENCE_BEGIN} line and one {CONFIG_REFERENCE_END} line")
    head, rest = text.split(CONFIG_REFERENCE_BEGIN)
    if CONFIG_REFERENCE_END not in rest:
        raise ValueError(f"{CONFIG_REFERENCE_END} comes before {CONFIG_REFERENCE_BEGIN}")
    tail = rest.split(CONFIG_REFERENCE_END)[1]
    return f"{head}{CONFIG_REFERENCE_BEGIN}\n\n{config_reference_markdown()}\n{CONFIG_REFERENCE_END}{tail}"
