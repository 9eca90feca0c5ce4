"""ASR batching across streams: many fragments waiting at once become one model call.

Streams per GPU is what pays for the product, and a batched Whisper call on a GPU costs little more
than a single one. Requests arriving within ``window`` of the first are sent together (up to
``max_batch``); with ``window == 0`` every request goes alone, which is the right choice on a
2-core CPU where a batch only queues work behind itself. The window is the only latency batching
adds, and it is paid only by the first fragment of a batch.

With batching on, one batched call is in flight at a time (a GPU runs them one after another
anyway). Requests that arrive while it runs wait for it to finish and then go together, at once:
under load the batch grows to what arrived during the previous call (up to ``max_batch``), with no
timer, so the batch size follows the load instead of being fixed by the window. Calls queued
behind each other in the executor would each pay the full wait and none would be larger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from livedub.runtime.engines.base import AsrRequest, Samples, SpeechRecognizer, Transcript
from livedub.runtime.errors import EngineError, ErrorCode


@dataclass(slots=True)
class _Request:
    request: AsrRequest
    future: asyncio.Future[Transcript]


class AsrBatcher:
    def __init__(
        self,
        asr: SpeechRecognizer,
        executor: Executor,
        *,
        window_s: float,
        max_batch: int,
        on_call: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._asr = asr
        self._executor = executor
        self._window_s = window_s
        self._max_batch = max_batch
        self._on_call = on_call
        self._waiting: list[_Request] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._busy = False

    async def transcribe(
        self,
        audio: Samples,
        *,
        language: str,
        prompt: str | None,
        detect_language: bool = False,
        hints: str | None = None,
        words: bool = False,
    ) -> Transcript:
        loop = asyncio.get_running_loop()
        asr_request = AsrRequest(audio, language, prompt, detect_language, hints, words)
        if self._window_s <= 0:
            self._on_call(1)
            return await loop.run_in_executor(self._executor, lambda: self._asr.transcribe_many([asr_request])[0])
        request = _Request(asr_request, loop.create_future())
        self._waiting.append(request)
        if self._busy:
            pass  # goes with the next call, started as soon as the running one returns
        elif len(self._waiting) >= self._max_batch:
            self._flush()
        elif self._flush_handle is None:
            self._flush_handle = loop.call_later(self._window_s, self._flush)
        return await request.future

    @property
    def waiting(self) -> int:
        """Requests not yet handed to the model whose callers still wait for them."""
        return sum(not r.future.done() for r in self._waiting)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        # A caller that timed out has cancelled its future: do not spend the model on it.
        self._waiting = [r for r in self._waiting if not r.future.done()]
        batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
        if not batch:
            return
        loop = asyncio.get_running_loop()
        try:
            task = loop.run_in_executor(self._executor, self._transcribe_batch, batch)
        except RuntimeError as exc:  # the executor is shut down (closing): fail now, never hang
            self._settle(batch, [_unavailable(exc)] * len(batch))
            return
        self._busy = True
        task.add_done_callback(lambda done: self._finished(batch, done))

    def _transcribe_batch(self, batch: list[_Request]) -> list[Transcript | BaseException]:
        """One model call; if it fails, the halves again, down to single requests, so that one stream's
        bad fragment (or a batch too large for the GPU's memory) fails only itself, at a cost of
        about 2·log2(n) extra calls rather than n."""
        return self._attempt([r.request for r in batch])

    def _attempt(self, requests: list[AsrRequest]) -> list[Transcript | BaseException]:
        self._on_call(len(requests))
        try:
            return list(self._asr.transcribe_many(requests))
        except Exception as error:
            if len(requests) == 1:
                return [error]
        half = len(requests) // 2
        return self._attempt(requests[:half]) + self._attempt(requests[half:])

    def _finished(self, batch: list[_Request], done: asyncio.Future[list[Transcript | BaseException]]) -> None:
        self._busy = False
        if done.cancelled():  # the executor was shut down with the call still queued
            results: list[Transcript | BaseException] = [_unavailable(None)] * len(batch)
        elif (error := done.exception()) is not None:
            results = [error] * len(batch)
        else:
            results = done.result()
        self._settle(batch, results)
        if self._waiting:
            self._flush()  # they waited for the model already; no window on top

    @staticmethod
    def _settle(batch: list[_Request], results: list[Transcript | BaseException]) -> None:
        for request, result in zip(batch, results, strict=True):
            if request.future.done():
                continue
            if isinstance(result, BaseException):
                request.future.set_exception(result)
            else:
                request.future.set_result(result)


def _unavailable(cause: BaseException | None) -> EngineError:
    return EngineError(ErrorCode.SERVICE_UNAVAILABLE, f"ASR is shutting down ({cause or 'cancelled'})", retryable=True)
