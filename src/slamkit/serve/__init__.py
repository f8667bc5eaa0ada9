"""``slamkit serve``: a trained run as an OpenAI-compatible HTTP service (see ``docs/serve.md``).

:mod:`~slamkit.serve.engine` (the loaded model, long clips split into segments),
:mod:`~slamkit.serve.batcher` (dynamic batching off the event loop), :mod:`~slamkit.serve.api` and
:mod:`~slamkit.serve.chat` (the endpoints), :mod:`~slamkit.serve.formats` (json, text, srt, vtt,
verbose_json), :mod:`~slamkit.serve.errors` (OpenAI error bodies, the upload limit),
:mod:`~slamkit.serve.metrics` (Prometheus), :mod:`~slamkit.serve.upload` (request bytes -> audio),
:mod:`~slamkit.serve.server` (uvicorn on a bound socket).
"""
