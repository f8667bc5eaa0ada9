"""``slamkit serve RUN_DIR|reference``: a trained run as an OpenAI-compatible HTTP service."""

from __future__ import annotations

import argparse

from slamkit.cli.common import EPILOG_OVERRIDES, Subparsers


def cmd_serve(args: argparse.Namespace) -> int:
    """Load the run once, bind the socket, print ``{"url": …}`` and serve until interrupted."""
    from slamkit.serve.api import ServeSettings, create_app
    from slamkit.serve.engine import Engine
    from slamkit.serve.server import bind, serve_forever

    if args.max_upload_mb <= 0 or args.timeout <= 0:
        raise ValueError("--max-upload-mb and --timeout must be positive")
    sock = bind(args.host, args.port)  # a taken port fails before the model loads
    engine = Engine(args.run_dir, args.overrides, args.device, args.model_name, args.max_batch, args.max_wait_ms, args.max_queue)
    settings = ServeSettings(args.api_key, args.max_upload_mb, args.timeout)
    try:
        serve_forever(create_app(engine, settings), sock)
    finally:
        engine.close()
    return 0


def register(subparsers: Subparsers) -> None:
    """Add ``serve``."""
    p = subparsers.add_parser("serve", help="serve a run over HTTP (OpenAI-compatible API and a web page)", epilog=EPILOG_OVERRIDES,
                              description="Serve a trained run (or `reference`, the shipped adapter): POST /v1/audio/transcriptions, "
                              "POST /v1/chat/completions, GET /v1/models, /health, /metrics and a web page at /. See docs/serve.md.")
    p.add_argument("run_dir", help="a training run directory, or `reference` for the shipped reference adapter")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one, printed at start-up)")
    p.add_argument("--api-key", default=None, help="require `Authorization: Bearer KEY` on /v1/* (default: no key)")
    p.add_argument("--max-batch", type=int, default=8, help="most clips (or segments) decoded in one batch (default 8)")
    p.add_argument("--max-wait-ms", type=float, default=10.0, help="how long the first clip of a batch waits for others (default 10)")
    p.add_argument("--max-queue", type=int, default=256, help="clips (or segments) that may wait; more gets 503 (default 256)")
    p.add_argument("--max-upload-mb", type=float, default=25.0, help="largest request body in MB; larger gets 413 (default 25)")
    p.add_argument("--timeout", type=float, default=300.0, help="per-request decoding timeout in seconds; past it 504 (default 300)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: the run's train.device)")
    p.add_argument("--model-name", default=None, help="the model id clients send (default: the run directory's name; "
                   "slamkit-reference for `reference`)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. decode.beam_size=1")
    p.set_defaults(func=cmd_serve)
