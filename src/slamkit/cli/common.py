"""What the command modules share: the subparsers type, the handler type, the overrides epilog."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Protocol, TypeAlias

#: What ``ArgumentParser.add_subparsers()`` returns; each command group adds its parsers to it.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: A subcommand's handler: the parsed arguments in, the process exit status out.
Handler: TypeAlias = Callable[[argparse.Namespace], int]

EPILOG_OVERRIDES = (
    "Overrides are key=value pairs on the config, e.g. train.max_steps=500 model.projector.k=4 "
    "(SLAM-LLM's ++key=value works too). `slamkit config` lists every key."
)


class CommandGroup(Protocol):
    """A module of ``slamkit.cli`` that adds one group of subcommands (with their ``func``)."""

    def register(self, subparsers: Subparsers) -> None: ...
