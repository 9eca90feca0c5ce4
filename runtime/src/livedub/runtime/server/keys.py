"""Typed application keys (aiohttp's ``web.AppKey``): one place, no import cycles."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import socketio
from aiohttp import web

if TYPE_CHECKING:
    from livedub.runtime.server.auth import TokenAuthenticator
    from livedub.runtime.server.caption_feed import CaptionFeed
    from livedub.runtime.server.console_feed import ConsoleFeed
    from livedub.runtime.server.service import DubbingService
    from livedub.runtime.server.transport import Requests

SERVICE_KEY: web.AppKey[DubbingService] = web.AppKey("service")
SIO_KEY: web.AppKey[socketio.AsyncServer] = web.AppKey("sio")
REQUESTS_KEY: web.AppKey[Requests] = web.AppKey("engineio_requests")
#: Set once the engines have been warmed up (server/warmup.py): ``/ready`` waits for it.
WARM_KEY: web.AppKey[asyncio.Event] = web.AppKey("warm")
AUTH_KEY: web.AppKey[TokenAuthenticator] = web.AppKey("auth")
#: What /console shows (server/console_feed.py).
CONSOLE_KEY: web.AppKey[ConsoleFeed] = web.AppKey("console")
#: The live caption feed behind ``/captions/{stream_id}`` (server/caption_feed.py).
CAPTIONS_KEY: web.AppKey[CaptionFeed] = web.AppKey("captions")
