"""Typed application keys (aiohttp's ``web.AppKey``): one place, no import cycles."""

from __future__ import annotations

from typing import TYPE_CHECKING

import socketio
from aiohttp import web

if TYPE_CHECKING:
    from livedub.runtime.server.service import DubbingService

SERVICE_KEY: web.AppKey[DubbingService] = web.AppKey("service")
SIO_KEY: web.AppKey[socketio.AsyncServer] = web.AppKey("sio")
