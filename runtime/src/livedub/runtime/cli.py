"""``livedub``: ``serve`` runs the runtime, ``dub`` streams a file through a running runtime."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from livedub.runtime import logs
    from livedub.runtime.config import Settings
    from livedub.runtime.server.app import create_app, serve

    overrides = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None}
    try:
        settings = Settings(**overrides)
        logs.configure(settings.log_level, settings.log_format)
        app = create_app(settings)
    except (ValidationError, ValueError) as exc:  # fail fast, naming the variable
        print(f"livedub: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(settings, app))
    return 0


def _dub(args: argparse.Namespace) -> int:
    from livedub.runtime.client.dub import DubOptions, dub_file

    options = DubOptions(
        url=args.url,
        source_language=args.source,
        target_language=args.to,
        voice_profile=args.voice,
        fragment_s=args.fragment_seconds,
        realtime=args.realtime,
        binary=not args.base64,
        token=args.token,
        progress=not args.quiet,
    )
    report = asyncio.run(dub_file(Path(args.input), Path(args.output), options, report_path=args.report))
    counts = report["summary"]
    print(
        f"dubbed {counts['fragments']} fragments: {counts['success']} success, {counts['partial']} partial, "
        f"{counts['failed']} failed -> {args.output}",
        file=sys.stderr,
    )
    return 0 if counts["failed"] == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livedub", description="Live broadcast dubbing runtime.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the dubbing runtime (HTTP + Socket.IO)")
    serve.add_argument("--host", help="interface (env HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (env PORT, default 8000)")
    serve.set_defaults(func=_serve)

    dub = sub.add_parser("dub", help="dub an audio file through a running runtime")
    dub.add_argument("input", help="WAV/Ogg/FLAC/M4A/MP3 file")
    dub.add_argument("-o", "--output", required=True, help="dubbed WAV to write")
    dub.add_argument("--to", default="es", help="target language (default es)")
    dub.add_argument("--from", dest="source", default="en", help="source language (default en)")
    dub.add_argument("--url", default="http://127.0.0.1:8000", help="runtime URL")
    dub.add_argument("--voice", help="voice profile name")
    dub.add_argument("--fragment-seconds", type=float, default=6.0, help="fragment length (default 6)")
    dub.add_argument("--realtime", action="store_true", help="pace fragments in real time like a live worker")
    dub.add_argument("--base64", action="store_true", help="send base64 text instead of binary attachments")
    dub.add_argument("--token", help="worker token (env LIVEDUB_TOKEN)")
    dub.add_argument("--report", type=Path, help="JSON report path (default OUTPUT.json)")
    dub.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    dub.set_defaults(func=_dub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
