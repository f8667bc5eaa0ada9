"""Tasks: what a record asks the model to do, its default prompt, and how its output is scored.

A task is data, not code paths: a name in :data:`TASKS` with a default prompt, the metric set
`slamkit score` applies, and the record fields its hypothesis lines carry for scoring. A manifest
may mix tasks (a ``task`` field per record), and one model trains on all of them.

Prompt precedence for a record: its own ``prompt`` (taken literally); else, when the record names a ``task``, that
task's prompt; else ``data.prompt`` when set; else the run's task (``data.task``) prompt. A prompt
may contain ``{biasing_words}``, filled from the record's ``biasing_words`` list (contextual
biasing); a run's :class:`PromptResolver` can instead draw that list from ``data.biasing_list``
(:class:`slamkit.data.biasing.BiasingOptions`): once, with ``data.biasing_seed``, for decoding
and validation, writing the list into the record so that its hypothesis line carries the words
the prompt used; per epoch in training (:meth:`PromptResolver.for_epoch`).

Registered: ``asr``, ``asr_biasing``, ``aac`` (audio captioning), ``sec`` (speech emotion
captioning), ``mc`` (music captioning), ``st`` (speech translation; its prompt names the
language through ``{target_language}``), ``st_cot`` (chain-of-thought speech translation, as
CoT-ST: the target is ``<transcript> <|translation|> <translation>`` in one generation; a task's
``separator`` says where the transcript ends, a record may carry its own), ``vsr`` (visual speech
recognition, for lip-video encoders).
"""

from __future__ import annotations

import logging

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from slamkit.data.biasing import (
    DEFAULT_BIASING_TEMPLATE,
    FIELD,
    PLACEHOLDER,
    BiasingOptions,
    record_words,
)
from slamkit.data.manifest import Record
from slamkit.eval.translation import COT_SEPARATOR, SEPARATOR_FIELD
from slamkit.registry import Registry

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from slamkit.config import Config


@dataclass(frozen=True)
class Task:
    """One task.

    Attributes:
        name: registry name (the manifest's ``task`` value).
        prompt: default instruction; ``{field}`` placeholders are filled from the record's fields.
        metric: the metric set `slamkit score` applies: ``wer`` | ``bwer`` | ``caption`` | ``bleu``.
        carries: record fields copied into hypothesis lines (what the metric needs beyond hyp/ref).
        references: the record field holding several references (captioning), if any.
        separator: for a chain-of-thought task, the text between the transcript and the answer in
            the target (and the output); hypothesis lines carry it (a record's own ``separator``
            field wins) so that scoring reads only the answer. ``None``: the whole output is the answer.
    """

    name: str
    prompt: str
    metric: str
    carries: tuple[str, ...] = ()
    references: str | None = None
    separator: str | None = None

    def format_prompt(self, template: str, record: Record) -> str:
        """``template`` with ``{field}`` placeholders filled from ``record`` (lists joined with ", ")."""
        if "{" not in template:
            return template
        fields = {k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in record.extra.items()}
        try:
            return template.format(**fields)
        except KeyError as exc:
            raise ValueError(f"{record.where}: the {self.name} prompt {template!r} needs the record field {exc.args[0]!r}") from None

    def hypothesis_line(self, record: Record, hyp: str) -> dict[str, Any]:
        """The JSONL line `slamkit decode` writes for ``record``: key, hyp, ref (a list for several references), task, carried fields."""
        refs = record.extra.get(self.references) if self.references else None
        line: dict[str, Any] = {"key": record.key, "hyp": hyp, "ref": refs if isinstance(refs, list) and refs else record.target, "task": self.name}
        for name in self.carries:
            if name in record.extra:
                line[name] = record.extra[name]
        if self.separator is not None:
            line[SEPARATOR_FIELD] = record.extra.get(SEPARATOR_FIELD, self.separator)
        return line


TASKS: Registry[Task] = Registry("task")

for _task in (
    Task("asr", "Transcribe the speech.", "wer"),
    Task("asr_biasing", DEFAULT_BIASING_TEMPLATE, "bwer", carries=(FIELD,)),
    Task("aac", "Describe the audio in one sentence.", "caption", references="references"),
    Task("sec", "Describe the speaker's emotion and how it is expressed, in one sentence.", "caption", references="references"),
    Task("mc", "Describe the music in a few sentences.", "caption", references="references"),
    Task("st", "Translate the speech into {target_language}.", "bleu", carries=("target_language",)),
    Task("st_cot", "Transcribe the speech, then translate it into {target_language}.", "bleu",
         carries=("target_language",), separator=COT_SEPARATOR),
    Task("vsr", "Transcribe the speech from the lip movements.", "wer"),
):
    TASKS.register(_task.name)(_task)


def record_task(record: Record, run_task: str) -> Task:
    """The task of ``record`` (its ``task`` field, else the run's); unknown names fail naming the line."""
    name = record.task or run_task
    if name not in TASKS:
        raise ValueError(f"{record.where}: unknown task {name!r}; registered tasks: {', '.join(TASKS.names())}")
    return TASKS.get(name)


def prompt_template(record: Record, run_task: str, run_prompt: str | None) -> str | None:
    """The template ``record``'s prompt is built from (precedence in the module docs); ``None``
    when the record's own ``prompt`` is taken literally."""
    task = record_task(record, run_task)
    if record.prompt:
        return None
    return run_prompt if record.task is None and run_prompt is not None else task.prompt


def resolve_prompt(record: Record, run_task: str, run_prompt: str | None) -> str:
    """The instruction text for ``record`` (precedence in the module docs), placeholders filled."""
    template = prompt_template(record, run_task, run_prompt)
    if template is None:
        return str(record.prompt)  # taken literally
    return record_task(record, run_task).format_prompt(template, record)


class PromptResolver:
    """``record -> prompt`` for one run: :func:`resolve_prompt` plus the run's biasing lists.

    Only records whose template holds ``{biasing_words}`` are touched by ``biasing``. Calling the
    resolver (decoding, validation) fixes such a record's list with the fixed seed and writes it
    into ``record.extra["biasing_words"]``, once per record; :meth:`for_epoch` (training) draws
    a list per epoch and leaves the record alone.
    """

    def __init__(self, run_task: str, run_prompt: str | None, biasing: BiasingOptions | None = None) -> None:
        self.run_task = run_task
        self.run_prompt = run_prompt
        self.biasing = biasing or BiasingOptions()
        self._fixed: dict[tuple[str, int, str], list[str]] = {}
        self._warned = False

    def _biasing_template(self, record: Record) -> str | None:
        template = prompt_template(record, self.run_task, self.run_prompt)
        return template if template is not None and PLACEHOLDER in template else None

    def _format(self, record: Record, template: str, words: list[str] | None) -> str:
        if words is None:
            raise ValueError(f"{record.where}: the prompt {template!r} needs a {FIELD!r} list: add one to the manifest line "
                             "(`slamkit prepare librispeech --biasing-tsv/--biasing-list`) or set data.biasing_list")
        return record_task(record, self.run_task).format_prompt(template, replace(record, extra={**record.extra, FIELD: words}))

    def varies_by_epoch(self, record: Record) -> bool:
        """True when training draws a new list for ``record`` every epoch."""
        return self.biasing.draws and self._biasing_template(record) is not None

    def __call__(self, record: Record) -> str:
        template = self._biasing_template(record)
        if template is None:
            return resolve_prompt(record, self.run_task, self.run_prompt)
        ident = (record.manifest, record.line, record.key)
        if ident not in self._fixed and not self._warned and self.biasing.draws and record_words(record) is not None:
            self._warned = True
            log.warning("%s: the record has its own %s and data.biasing_list is set, so %d distractors are added to "
                        "it; to decode with a manifest's lists as they are (e.g. the published test lists), pass "
                        "data.biasing_list=null", record.where, FIELD, self.biasing.distractors)
        if ident not in self._fixed:
            words = self.biasing.words(record, self.biasing.fixed_seed)
            prompt = self._format(record, template, words)
            self._fixed[ident] = record.extra[FIELD] = list(words or [])
            return prompt
        return self._format(record, template, self._fixed[ident])

    def check(self, record: Record) -> None:
        """Fail now, naming the line, where :meth:`for_epoch` would fail later (cheap: draws nothing)."""
        template = self._biasing_template(record)
        if template is not None:
            self._format(record, template, record_words(record) or [])

    def for_epoch(self, record: Record, epoch: int) -> tuple[str, list[str] | None]:
        """``(prompt, biasing words)`` of ``record`` in training epoch ``epoch`` (words ``None`` when it takes none)."""
        template = self._biasing_template(record)
        if template is None or not self.biasing.draws:
            return self(record), record.extra.get(FIELD)
        words = self.biasing.epoch_words(record, epoch)
        return self._format(record, template, words), words


def prompt_resolver(cfg: Config) -> PromptResolver:
    """The run's :class:`PromptResolver`: ``data.task``, ``data.prompt`` and ``data.biasing_*``."""
    if cfg.data.task not in TASKS:
        raise ValueError(f"data.task: unknown task {cfg.data.task!r}; registered tasks: {', '.join(TASKS.names())}")
    return PromptResolver(cfg.data.task, cfg.data.prompt, BiasingOptions.from_config(cfg.data, cfg.train.seed))
