"""The ASR batcher in front of the real Whisper model: batch size follows the load."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from livedub.runtime.pipeline.batcher import AsrBatcher
from support.data import fleurs

pytestmark = pytest.mark.slow
SR = 16_000


@pytest.fixture
def clips(shared_data):
    return [fleurs(f"fleurs-en-00{i}")[0][: 4 * SR] for i in range(6)]


async def test_requests_arriving_during_a_call_go_together_in_the_next_one(whisper, clips):
    sizes: list[int] = []
    with ThreadPoolExecutor(1) as executor:
        batcher = AsrBatcher(whisper, executor, window_s=0.01, max_batch=8, on_call=sizes.append)
        first = asyncio.create_task(batcher.transcribe(clips[0], language="en", prompt=None))
        await asyncio.sleep(0.05)  # the window has passed: the first call is running (~0.5 s on 2 cores)
        rest = []
        for clip in clips[1:]:  # staggered by more than the window, as streams' fragments arrive
            rest.append(asyncio.create_task(batcher.transcribe(clip, language="en", prompt=None)))
            await asyncio.sleep(0.03)
        assert batcher.waiting == 5, "requests that arrive while the model runs wait for it"
        results = await asyncio.gather(first, *rest)
    assert sizes == [1, 5], "one call for the first, one for everything that arrived during it"
    assert all(r.text for r in results)
    # Each caller gets its own fragment's transcript back, not a neighbour's.
    alone = [whisper.transcribe(c, language="en").text for c in clips]
    assert [r.text for r in results] == alone


async def test_a_busy_model_never_takes_more_than_max_batch(whisper, clips):
    sizes: list[int] = []
    with ThreadPoolExecutor(1) as executor:
        batcher = AsrBatcher(whisper, executor, window_s=0.01, max_batch=2, on_call=sizes.append)
        first = asyncio.create_task(batcher.transcribe(clips[0], language="en", prompt=None))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.transcribe(c, language="en", prompt=None)) for c in clips[1:]]
        await asyncio.gather(first, *rest)
    assert sizes == [1, 2, 2, 1]


async def test_without_a_window_every_request_goes_alone(whisper, clips):
    sizes: list[int] = []
    with ThreadPoolExecutor(2) as executor:
        batcher = AsrBatcher(whisper, executor, window_s=0, max_batch=8, on_call=sizes.append)
        await asyncio.gather(*(batcher.transcribe(c, language="en", prompt=None) for c in clips[:3]))
    assert sizes == [1, 1, 1]


async def test_one_bad_fragment_fails_alone_and_its_batch_companions_are_transcribed(whisper, clips):
    from livedub.runtime.errors import EngineError, ErrorCode

    broken = clips[1].copy()
    broken[100] = np.nan
    sizes: list[int] = []
    with ThreadPoolExecutor(1) as executor:
        batcher = AsrBatcher(whisper, executor, window_s=0.05, max_batch=8, on_call=sizes.append)
        results = await asyncio.gather(
            *(batcher.transcribe(c, language="en", prompt=None) for c in (clips[0], broken, clips[2])),
            return_exceptions=True,
        )
    assert isinstance(results[1], EngineError) and results[1].code == ErrorCode.INVALID_AUDIO
    assert results[0].text and results[2].text
    assert sizes == [3, 1, 2, 1, 1], "the failed batch is halved until the bad fragment is alone"


async def test_a_bad_fragment_in_a_large_batch_costs_log_n_extra_calls(whisper, clips):
    from livedub.runtime.errors import EngineError

    broken = clips[0].copy()
    broken[0] = np.inf
    batch = [clips[i % len(clips)][: 2 * SR] for i in range(8)]
    batch[5] = broken[: 2 * SR]
    sizes: list[int] = []
    with ThreadPoolExecutor(1) as executor:
        batcher = AsrBatcher(whisper, executor, window_s=0.05, max_batch=8, on_call=sizes.append)
        results = await asyncio.gather(
            *(batcher.transcribe(a, language="en", prompt=None) for a in batch), return_exceptions=True
        )
    assert [i for i, r in enumerate(results) if isinstance(r, EngineError)] == [5]
    assert len(sizes) == 7, sizes  # 8 -> 4+4 -> 2+2 -> 1+1: 1 + 2 + 2 + 2 calls, not 1 + 8


async def test_a_shut_down_executor_fails_requests_instead_of_hanging(whisper, clips):
    from livedub.runtime.errors import EngineError, ErrorCode

    executor = ThreadPoolExecutor(1)
    executor.shutdown()
    batcher = AsrBatcher(whisper, executor, window_s=0.01, max_batch=8)
    with pytest.raises(EngineError) as failed:
        await asyncio.wait_for(batcher.transcribe(clips[0], language="en", prompt=None), 5)
    assert failed.value.code == ErrorCode.SERVICE_UNAVAILABLE and failed.value.retryable
    assert batcher.waiting == 0
