"""Tasks: what a record asks the model to do, its default prompt, and how its output is scored.

A task is data, not code paths: a name in :data:`TASKS` with a default prompt, the metric set
`slamkit score` applies, and the record fields its hypothesis lines carry for scoring. A manifest
may mix tasks (a ``task`` field per record), and one model trains on all of them.

Prompt precedence for a record: its own ``prompt`` (taken literally); else, when the record names a ``task``, that
task's prompt; else ``data.prompt`` when set; else the run's task (``data.task``) prompt. A prompt
may contain ``{biasing_words}``, filled from the record's ``biasing_words`` list (contextual
biasing).

Registered: ``asr``, ``asr_biasing``, ``aac`` (audio captioning), ``sec`` (speech emotion
captioning), ``mc`` (music captioning), ``st`` (speech translation; its prompt names the
language through ``{target_language}``), ``vsr`` (visual speech recognition, for lip-video encoders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from slamkit.data.manifest import Record
from slamkit.registry import Registry

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
    """

    name: str
    prompt: str
    metric: str
    carries: tuple[str, ...] = ()
    references: str | None = None

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
        return line


TASKS: Registry[Task] = Registry("task")

for _task in (
    Task("asr", "Transcribe the speech.", "wer"),
    Task("asr_biasing", 'Transcribe speech to text. Some hotwords might help. The hotwords are "{biasing_words}".', "bwer", carries=("biasing_words",)),
    Task("aac", "Describe the audio in one sentence.", "caption", references="references"),
    Task("sec", "Describe the speaker's emotion and how it is expressed, in one sentence.", "caption", references="references"),
    Task("mc", "Describe the music in a few sentences.", "caption", references="references"),
    Task("st", "Translate the speech into {target_language}.", "bleu", carries=("target_language",)),
    Task("vsr", "Transcribe the speech from the lip movements.", "wer"),
):
    TASKS.register(_task.name)(_task)


def record_task(record: Record, run_task: str) -> Task:
    """The task of ``record`` (its ``task`` field, else the run's); unknown names fail naming the line."""
    name = record.task or run_task
    if name not in TASKS:
        raise ValueError(f"{record.where}: unknown task {name!r}; registered tasks: {', '.join(TASKS.names())}")
    return TASKS.get(name)


def resolve_prompt(record: Record, run_task: str, run_prompt: str | None) -> str:
    """The instruction text for ``record`` (precedence in the module docs), placeholders filled."""
    task = record_task(record, run_task)
    if record.prompt:
        return record.prompt  # taken literally
    if record.task is None and run_prompt is not None:
        template = run_prompt
    else:
        template = task.prompt
    return task.format_prompt(template, record)


def prompt_resolver(cfg: "Config") -> Callable[[Record], str]:
    """``record -> prompt`` for a run: :func:`resolve_prompt` with ``data.task`` and ``data.prompt``."""
    if cfg.data.task not in TASKS:
        raise ValueError(f"data.task: unknown task {cfg.data.task!r}; registered tasks: {', '.join(TASKS.names())}")
    return lambda record: resolve_prompt(record, cfg.data.task, cfg.data.prompt)
