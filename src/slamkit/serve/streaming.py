"""Token-by-token answers for ``stream: true``: a request's text as the batch it shares generates it.

Greedy decoding (``decode.beam_size`` 1) hands every step's new tokens ``[b]`` to a
:class:`RowStreamer`, which passes each row's ids so far to the listener its request registered
(from the batcher's thread). :func:`text_deltas` turns those into text pieces on the event loop,
segment after segment, so that the pieces joined are exactly the final text
(:func:`slamkit.infer.longform.join_segments`). With beam search there is no stable partial text:
each segment's text arrives whole when it is decoded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future

from transformers.generation.streamers import BaseStreamer

Listener = Callable[[list[int]], None]


class RowStreamer(BaseStreamer):
    """Hands each row's generated ids so far to that row's listener (None: nobody listens)."""

    def __init__(self, listeners: list[Listener | None], eos: int | None) -> None:
        self.listeners, self.eos = listeners, eos
        self.ids: list[list[int]] = [[] for _ in listeners]
        self.done = [listener is None for listener in listeners]

    def put(self, value) -> None:  # noqa: ANN001 - a CPU tensor: [b, 0] (the empty prompt ids) once, then [b] per step
        if value.dim() != 1:
            return
        for i, token in enumerate(value.tolist()):
            if self.done[i]:
                continue
            if token == self.eos:
                self.done[i] = True
                continue
            self.ids[i].append(token)
            self.listeners[i](list(self.ids[i]))

    def end(self) -> None:
        """Nothing to flush: listeners always hold everything so far."""


async def text_deltas(futures: list[Future], updates: asyncio.Queue, decode: Callable[[list[int]], str],
                      timeout: float | None) -> AsyncIterator[str]:
    """Text pieces of the segments in order: partial texts from ``updates`` (``(index, ids)``; ``(index, None)``
    when that segment's future is done), then the rest of each segment's final text.

    A partial text is sent only while it is a prefix of what was sent plus more, and not ending in
    half a character, so that the pieces always join to the final text.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    latest: dict[int, list[int]] = {}
    finished: set[int] = set()
    current, sent, any_text = 0, "", False
    while current < len(futures):
        left = None if deadline is None else max(0.0, deadline - loop.time())
        index, ids = await asyncio.wait_for(updates.get(), left)
        if ids is None:
            finished.add(index)
        else:
            latest[index] = ids
        while current < len(futures):
            text = futures[current].result().strip() if current in finished else decode(latest.get(current, []))
            piece = text[len(sent):] if text.startswith(sent) and not text.endswith("\ufffd") else ""
            if piece:
                yield (" " if any_text and not sent else "") + piece
                sent, any_text = text, True
            if current not in finished:
                break
            current, sent = current + 1, ""
