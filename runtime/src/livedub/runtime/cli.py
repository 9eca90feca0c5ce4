"""``livedub``: ``serve`` runs the runtime; ``dub`` dubs a file, in this process or through ``--url``.

Heavy imports (engines, PyAV, the server) happen inside the commands, so ``--help`` and argument
errors answer at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from livedub.runtime.client.dub import DubOptions
    from livedub.runtime.client.live import LiveSource

_Run = Callable[["DubOptions"], Awaitable[dict[str, Any]]]


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
    from livedub.runtime.client import media, summary
    from livedub.runtime.client.dub import DubError, DubOptions, check_live_output, check_paths, dub_file
    from livedub.runtime.client.live import is_url
    from livedub.runtime.errors import DubbingError

    input_path, output_path = Path(args.input), Path(args.output)
    # Everything that can be checked before engines load is checked first: seconds, not a minute, to an error.
    if args.plot and not summary.plotting_available():
        print(f"livedub: {summary.MISSING_MATPLOTLIB}", file=sys.stderr)
        return 2
    options = DubOptions(
        url=args.url or "",
        source_language=args.source,
        target_language=args.to,
        voice_profile=args.voice,
        fragment_s=args.fragment_seconds,
        realtime=args.realtime,
        binary=not args.base64,
        token=args.token,
        progress=not args.quiet,
        keep_original_audio=args.keep_original_audio,
        speakers=args.speakers,
        captions=args.captions,
    )
    live = args.live or is_url(args.input)
    try:
        if live:
            check_live_output(output_path)
        else:
            check_paths(input_path, output_path)
    except (DubError, media.MediaError) as exc:
        print(f"livedub: {exc}", file=sys.stderr)
        return 2

    async def dub_input(options: DubOptions) -> dict[str, Any]:
        return await dub_file(input_path, output_path, options, report_path=args.report)

    try:
        if live:
            report = asyncio.run(_dub_live(args.input, output_path, options, args))
        else:
            report = asyncio.run(_dub_with_runtime(options, args, dub_input))
    except (DubError, media.MediaError, DubbingError) as exc:
        print(f"livedub: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("livedub: interrupted", file=sys.stderr)
        return 130
    except _ConfigError as exc:
        print(f"livedub: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    print(summary.fragment_table(report), file=sys.stderr)
    if args.plot:
        summary.write_latency_plot(report, args.plot)
        print(f"latency plot -> {args.plot}", file=sys.stderr)
    counts = report["summary"]
    print(
        f"dubbed {counts['fragments']} fragments: {counts['success']} success, {counts['partial']} partial, "
        f"{counts['failed']} failed -> {args.output}",
        file=sys.stderr,
    )
    return 0 if counts["failed"] == 0 else 1


class _ConfigError(Exception):
    """Settings from the environment are invalid (the message names the variable)."""


async def _dub_live(
    source_name: str, output_path: Path, options: DubOptions, args: argparse.Namespace
) -> dict[str, Any]:
    """A live input: opened (or refused) before any engine loads, read as it plays, ended by its end or Ctrl-C."""
    import uuid

    from livedub.runtime.client.live import LiveSource, dub_live

    source = await LiveSource.open(source_name, options.fragment_s)
    stream_id = options.stream_id or f"live-{uuid.uuid4().hex[:8]}"

    async def run(options: DubOptions) -> dict[str, Any]:
        return await dub_live(source, output_path, options, stream_id, report_path=args.report)

    _stop_on_interrupt(source)
    try:
        report = await _dub_with_runtime(options, args, run)
    finally:
        source.stop()
    if source.error:
        print(f"livedub: {source.error}", file=sys.stderr)
    return report


def _stop_on_interrupt(source: LiveSource) -> None:
    """The first Ctrl-C ends the input (what is in flight is still dubbed and written); a second one aborts."""
    import signal

    loop = asyncio.get_running_loop()

    def stop() -> None:
        source.stop()
        loop.remove_signal_handler(signal.SIGINT)  # back to KeyboardInterrupt: the next Ctrl-C aborts
        print(
            "\nlivedub: stopping the input; finishing the fragments in flight (Ctrl-C again to abort)", file=sys.stderr
        )

    loop.add_signal_handler(signal.SIGINT, stop)


async def _dub_with_runtime(options: DubOptions, args: argparse.Namespace, run: _Run) -> dict[str, Any]:
    """Dub through ``--url``, or through the embedded runtime started in this process (``client.inprocess``)."""
    if options.url:
        return await run(options)
    from pydantic import ValidationError

    from livedub.runtime import logs
    from livedub.runtime.client.inprocess import LOOPBACK, local_runtime, private_token
    from livedub.runtime.config import Settings
    from livedub.runtime.server.app import create_app, default_loader

    token = private_token()
    try:
        # The user's engine settings (ASR_MODEL_SIZE, TTS_ENGINE, ...) apply; where it listens and
        # who may connect do not: loopback only, one token that only this process holds.
        overrides: dict[str, Any] = {"host": LOOPBACK, "auth_mode": "required", "auth_tokens": token}
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise _ConfigError(str(exc)) from exc
    # The runtime's log lines (warnings only) in the console format: this is a terminal, not a pod.
    logs.configure("WARNING", "console")
    started = time.perf_counter()
    if options.progress:
        print("loading the embedded engines (no --url: dubbing in this process)...", file=sys.stderr)
    # Loaded here rather than by the app's background task so a failure surfaces as an error now,
    # not as a runtime that never turns ready.
    engines, voices = await asyncio.to_thread(default_loader, settings)
    if options.progress:
        print(f"engines ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    async with local_runtime(create_app(settings, engines=engines, voices=voices)) as url:
        options.url, options.token = url, token
        return await run(options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livedub", description="Live broadcast dubbing runtime.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the dubbing runtime (HTTP + Socket.IO)")
    serve.add_argument("--host", help="interface (env HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (env PORT, default 8000)")
    serve.set_defaults(func=_serve)

    dub = sub.add_parser(
        "dub",
        help="dub an audio or video file (in this process, or through a runtime with --url)",
        description="Dub INPUT into another language. With no --url the embedded engines run in this "
        "process (no server needed); with --url the file streams through that runtime like a live worker. "
        "A video output (.mp4 .m4v .mov .mkv .webm) keeps the input's picture stream untouched and carries "
        "the dub as its audio track (AAC in MP4/MOV, Opus in MKV/WebM).",
        epilog="examples:\n"
        "  livedub dub talk.ogg --to es -o talk.es.wav\n"
        "  livedub dub talk.mp4 --to es -o talk.es.mp4 --keep-original-audio\n"
        "  livedub dub talk.wav --to fr -o out/fr.wav --url http://127.0.0.1:8000 --plot out/latency.png\n"
        "  livedub dub https://example.org/live/index.m3u8 --to es -o live.es.wav",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dub.add_argument(
        "input",
        help="audio (WAV/Ogg/FLAC/M4A/MP3) or video (MP4/MOV/MKV/WebM) file, or a live URL FFmpeg reads "
        "(HLS .m3u8, rtmp://, srt://): dubbed as it plays, until it ends or Ctrl-C",
    )
    dub.add_argument("-o", "--output", required=True, help="dubbed file: .wav, or a video container (see above)")
    dub.add_argument("--to", default="es", help="target language (default es)")
    dub.add_argument("--from", dest="source", default="en", help="source language (default en)")
    dub.add_argument("--url", help="a running runtime (e.g. http://127.0.0.1:8000); default: dub in this process")
    dub.add_argument("--voice", help="voice profile name")
    dub.add_argument("--fragment-seconds", type=float, default=6.0, help="fragment length (default 6)")
    dub.add_argument("--realtime", action="store_true", help="pace fragments in real time like a live worker")
    dub.add_argument(
        "--live", action="store_true", help="read INPUT as a live stream: a file plays at real time, written as it goes"
    )
    dub.add_argument("--base64", action="store_true", help="send base64 text instead of binary attachments")
    dub.add_argument("--token", help="worker token for --url (env LIVEDUB_TOKEN)")
    dub.add_argument("--report", type=Path, help="JSON report path (default OUTPUT.json)")
    dub.add_argument(
        "--keep-original-audio", action="store_true", help="video output: the original audio as a second track"
    )
    dub.add_argument("--speakers", action="store_true", help="tell speakers apart: a label and a voice for each")
    dub.add_argument(
        "--captions",
        action="store_true",
        help="write timed captions beside the output (OUTPUT.<lang>.vtt, both languages)",
    )
    dub.add_argument("--plot", type=Path, metavar="PNG", help="write a per-fragment latency plot (needs matplotlib)")
    dub.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    dub.set_defaults(func=_dub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
