"""``/console`` in a real headless browser (Debian's chromium + chromium-driver, driven by selenium)
against the real server on loopback with the embedded engines, on real FLEURS speech.

The page must: load from the package with nothing fetched elsewhere (its Content-Security-Policy
would log any attempt as a browser error, and the test fails on any); list the streams python test
clients start, with their languages and wire dialect, and plot each delivered fragment; round-trip a
speech file and the (fake) microphone through socket.io-client to the same server and end with the
dub in an ``<audio>`` element; and be refused without the token when authentication is on.

Selenium is blocking, so every browser call runs in a thread: the server shares this test's loop.
Skipped only where chromium or its driver is not installed (hack/setup.sh installs both in CI).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
import soundfile as sf

from livedub.runtime.protocol import events as ev
from livedub.runtime.server.keys import CONSOLE_KEY, SERVICE_KEY, SIO_KEY
from support.data import FLEURS, fleurs

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("needs Debian's chromium and chromium-driver (hack/dev-apt-packages.txt)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

SPEECH = FLEURS / "fleurs-en-000.ogg"  # 10.6 s: two 6 s fragments from the try-it panel


@pytest.fixture(scope="module")
def microphone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the fake microphone says: a FLEURS clip as 16-bit WAV (the only form chromium plays in)."""
    audio, rate = fleurs("fleurs-en-003")
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    sf.write(path, audio, rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, microphone_wav: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        # Without these the browser dials out (Google services) and the closed network refuses it.
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        # The microphone: granted without a prompt, fed from a real speech file.
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone_wav}",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The console in the browser; every call runs off the event loop."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    async def open(self, url: str) -> None:
        await asyncio.to_thread(self.driver.get, url)
        await asyncio.to_thread(self.driver.get_log, "browser")  # start clean: only this page's messages count

    async def js(self, script: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.driver.execute_script, script, *args)

    async def until(self, condition: Callable[[Any], Any], timeout: float, what: str) -> Any:
        wait = WebDriverWait(self.driver, timeout, poll_frequency=0.25)
        try:
            return await asyncio.to_thread(wait.until, condition)
        except Exception as exc:
            text = await asyncio.to_thread(lambda: self.driver.find_element(By.TAG_NAME, "body").text)
            raise AssertionError(f"{what} within {timeout}s; page shows:\n{text}") from exc

    async def row(self, stream_id: str) -> dict[str, Any]:
        """A stream's row as {header: cell text}, once it is there."""
        script = """
            const row = document.querySelector(`#streams tbody tr[data-stream-id="${arguments[0]}"]`);
            if (!row) return null;
            const heads = [...document.querySelectorAll('#streams thead th')].map(th => th.textContent);
            return Object.fromEntries([...row.cells].map((td, i) => [heads[i], td.textContent]));
        """
        return await self.until(lambda d: d.execute_script(script, stream_id), 30, f"a row for {stream_id}")

    async def chart_points(self) -> int:
        return int(await self.js("return Number(document.getElementById('chart').dataset.points || 0)"))

    async def errors(self) -> list[dict[str, Any]]:
        """Browser console errors since the page opened (a CSP violation is one)."""
        entries = await asyncio.to_thread(self.driver.get_log, "browser")
        return [e for e in entries if e["level"] == "SEVERE"]

    async def dub_audio(self, timeout: float) -> dict[str, Any]:
        """Wait for the try-it panel to finish; the <audio> element's source and decoded length."""
        await self.until(
            lambda d: d.execute_script("return document.getElementById('try-status').textContent").startswith(
                ("done", "failed")
            ),
            timeout,
            "the try-it panel finishing",
        )
        status = await self.js("return document.getElementById('try-status').textContent")
        assert status.startswith("done"), status
        await self.until(
            lambda d: d.execute_script("return document.getElementById('try-audio').readyState >= 1"),
            20,
            "the dub's metadata loading",
        )
        return dict(
            await self.js(
                "const a = document.getElementById('try-audio');"
                "return {src: a.src, duration: a.duration, status: arguments[0],"
                " lines: [...document.querySelectorAll('#try-lines li')].map(li => li.textContent)};",
                status,
            )
        )


@pytest.fixture
def page(browser: Any) -> Page:
    return Page(browser)


async def _worker_dialect_stream(url: str, stream_id: str) -> socketio.AsyncClient:
    """A stream opened in the media worker's dialect (nested config), to show next to a guide one."""
    client = socketio.AsyncClient(reconnection=False)
    ready = asyncio.get_running_loop().create_future()
    client.on("stream:ready", lambda data: ready.set_result(data))
    await client.connect(url, transports=["websocket"])
    await client.emit(
        "stream:init",
        {
            "stream_id": stream_id,
            "worker_id": "media-worker-1",
            "config": {
                "source_language": "en",
                "target_language": "fr",
                "format": "m4a",
                "sample_rate_hz": 48000,
                "channels": 2,
            },
            "max_inflight": 3,
        },
    )
    await asyncio.wait_for(ready, 30)
    return client


async def test_console_shows_streams_with_languages_dialects_and_latency(make_server: Any, page: Page) -> None:
    server = await make_server()
    recorder = await server.connect(stream_id="stream-1", worker_id="test-worker")
    kind, _ = await recorder.init(source_language="en", target_language="es")
    assert kind == "stream:ready"
    audio, rate = fleurs("fleurs-en-000")
    step = 6 * rate
    pieces = [audio[i : i + step] for i in range(0, len(audio), step)]
    for sequence, piece in enumerate(pieces):
        await recorder.send(f"f{sequence}", sequence, piece, rate=rate)
    processed = await recorder.processed(len(pieces))
    worker = await _worker_dialect_stream(server.url, "worker-stream")
    try:
        await page.open(server.url + "/console")
        row = await page.row("stream-1")
        assert row["languages"] == "en → es"
        assert row["dialect"] == "guide"
        assert row["worker"] == "test-worker"
        assert row["state"] == "active"
        ok = sum(p["status"] == "success" for p in processed)
        partial = sum(p["status"] == "partial" for p in processed)
        failed = sum(p["status"] == "failed" for p in processed)
        assert row["fragments (ok / partial / failed)"] == f"{ok} / {partial} / {failed}"
        other = await page.row("worker-stream")
        assert (other["languages"], other["dialect"]) == ("en → fr", "worker")
        # The chart shows the selected stream: pick stream-1 and find one point per fragment.
        await page.js("document.querySelector('#streams tbody tr[data-stream-id=\"stream-1\"]').click()")
        await page.until(
            lambda d: d.execute_script("return document.getElementById('chart').dataset.points") == str(len(pieces)),
            10,
            f"{len(pieces)} latency points for stream-1",
        )
        assert await page.js("return document.querySelector('#chart canvas') !== null")
        # Those points are the fragments' own processing times, as the client received them.
        snapshot = await page.js("return await (await fetch('/console/api/snapshot?stream=stream-1')).json()")
        mine = next(s for s in snapshot["streams"] if s["stream_id"] == "stream-1")
        assert [p["processing_time_ms"] for p in mine["points"]] == [p["processing_time_ms"] for p in processed]
        runtime = await page.js("return document.getElementById('runtime').textContent")
        assert runtime.startswith("ready") and "asr=" in runtime, runtime
        assert await page.errors() == []
    finally:
        await worker.disconnect()


async def test_console_lists_a_rejected_fragment_as_an_error(make_server: Any, page: Page) -> None:
    server = await make_server()
    recorder = await server.connect(stream_id="stream-bad")
    await recorder.init()
    await recorder.client.emit(
        "fragment:data",
        {
            "fragment_id": "bad-1",
            "stream_id": "stream-bad",
            "sequence_number": "first",
            "audio": "",
            "format": "pcm_s16le",
        },
    )
    await recorder.wait_for(lambda r: bool(r.of("error")), 30)
    await page.open(server.url + "/console")
    text = await page.until(
        lambda d: d.execute_script("return document.getElementById('errors').textContent") or None,
        10,
        "the error listed",
    )
    code = recorder.of("error")[0]["code"]
    assert code in text and "stream-bad" in text


async def test_try_it_dubs_a_speech_file_through_the_server(make_server: Any, page: Page) -> None:
    server = await make_server()
    await page.open(server.url + "/console")
    await asyncio.to_thread(lambda: page.driver.find_element(By.ID, "try-file").send_keys(str(SPEECH)))
    await page.js("document.getElementById('try-send-file').click()")
    dub = await page.dub_audio(timeout=240)
    assert dub["src"].startswith("blob:")
    assert dub["status"] == "done: 2 of 2 fragments dubbed", dub
    # Duration matching keeps each fragment's slot: the dub lasts about as long as the speech.
    assert abs(dub["duration"] - sf.info(SPEECH).duration) < 1.5, dub
    assert all(" success " in line or " partial " in line for line in dub["lines"]), dub["lines"]
    assert any("→" in line and len(line.split("→")[1].strip()) > 3 for line in dub["lines"]), dub["lines"]
    # The panel's own stream is on the page too, as the console's, with both fragments plotted.
    feed = server.app[CONSOLE_KEY]
    streams = feed.snapshot(server.app[SERVICE_KEY])["streams"]
    mine = next(s for s in streams if s["stream_id"].startswith("console-"))
    mine = next(s for s in feed.snapshot(server.app[SERVICE_KEY], mine["stream_id"])["streams"] if "points" in s)
    assert [p["sequence_number"] for p in mine["points"]] == [0, 1]
    row = await page.row(mine["stream_id"])
    assert (row["languages"], row["dialect"]) == ("en → es", "guide")
    assert await page.errors() == []


async def test_try_it_dubs_the_microphone(make_server: Any, page: Page) -> None:
    server = await make_server()
    await page.open(server.url + "/console")
    await page.js("document.getElementById('try-mic').click()")
    await page.until(
        lambda d: d.execute_script("return document.getElementById('try-status').textContent").startswith("recording"),
        20,
        "recording to start",
    )
    # One full 6 s fragment from the (looping) speech file, then stop: the rest goes as a second one.
    await asyncio.sleep(8)
    await page.js("document.getElementById('try-mic').click()")
    dub = await page.dub_audio(timeout=180)
    assert dub["src"].startswith("blob:") and 7 < dub["duration"] < 11, dub
    assert dub["status"] == "done: 2 of 2 fragments dubbed", dub
    assert await page.errors() == []


async def test_console_behind_auth_refuses_the_page_without_the_token(make_server: Any, page: Page) -> None:
    server = await make_server(auth_mode="required", auth_tokens="console-s3cret")
    async with aiohttp.ClientSession() as http:
        for path in ("/console", "/console/api/snapshot", "/console?token=wrong"):
            async with http.get(server.url + path) as response:
                assert response.status == 401, path
                assert (await response.json())["code"] == "AUTH_FAILED"
        headers = {"Authorization": "Bearer console-s3cret"}
        async with http.get(server.url + "/console/api/snapshot", headers=headers) as response:
            assert response.status == 200
    await page.open(server.url + "/console")
    body = await asyncio.to_thread(lambda: page.driver.find_element(By.TAG_NAME, "body").text)
    assert "AUTH_FAILED" in body and "livedub console" not in body
    # With the token the page polls with it, and a stream opened with the same token shows up.
    recorder = await server.connect(stream_id="secured", auth={"token": "console-s3cret"})
    kind, _ = await recorder.init()
    assert kind == "stream:ready"
    await page.open(server.url + "/console?token=console-s3cret")
    row = await page.row("secured")
    assert row["languages"] == "en → es"
    runtime = await page.js("return document.getElementById('runtime').textContent")
    assert runtime.startswith("ready"), runtime
    assert await page.errors() == []


async def test_a_token_with_a_plus_keeps_working_and_leaves_the_address_bar(make_server: Any, page: Page) -> None:
    """Pasted as is, ``+`` in ``?token=`` is the token's own ``+`` (the server reads it both ways):
    the page must send it so, not as the space URLSearchParams makes of it."""
    secret = "con+sole/s3cret="
    server = await make_server(auth_mode="required", auth_tokens=secret)
    recorder = await server.connect(stream_id="plus", auth={"token": secret})
    assert (await recorder.init())[0] == "stream:ready"
    await page.open(server.url + "/console?token=" + secret + "&keep=1")
    row = await page.row("plus")  # polled after load, with the Bearer header the page built
    assert row["languages"] == "en → es"
    runtime = await page.js("return document.getElementById('runtime').textContent")
    assert runtime.startswith("ready"), runtime
    url = await asyncio.to_thread(lambda: page.driver.current_url)
    assert "token" not in url and url.endswith("/console?keep=1"), url
    assert await page.errors() == []


async def test_try_it_shows_a_refusal_and_a_second_try_works(make_server: Any, page: Page) -> None:
    server = await make_server()
    await page.open(server.url + "/console")
    await asyncio.to_thread(lambda: page.driver.find_element(By.ID, "try-file").send_keys(str(SPEECH)))
    # A pair the runtime does not dub: stream:init is refused with a typed error.
    await page.js("const t = document.getElementById('try-target'); t.add(new Option('xx', 'xx')); t.value = 'xx';")
    await page.js("document.getElementById('try-send-file').click()")
    status = await page.until(
        lambda d: (
            (t := d.execute_script("return document.getElementById('try-status').textContent")).startswith("failed")
            and t
        ),
        60,
        "the refusal shown",
    )
    assert "UNSUPPORTED_LANGUAGE" in status, status
    # The panel is free again: the same button with a pair it dubs goes through to the end.
    await page.js("document.getElementById('try-target').value = 'es'")
    await page.js("document.getElementById('try-send-file').click()")
    dub = await page.dub_audio(timeout=240)
    # Reaching the end is the point here (how many fragments beat their deadline on a loaded
    # machine is test_try_it_dubs_a_speech_file_through_the_server's business).
    assert dub["status"].startswith("done: ") and " of 2 fragments dubbed" in dub["status"], dub


async def test_try_it_fails_cleanly_when_the_connection_drops(make_server: Any, page: Page) -> None:
    """The server drops the panel's connection with fragments in flight: the panel must say so (not
    wait forever for answers that cannot come) and be free for the next try."""
    server = await make_server()
    service = server.app[SERVICE_KEY]
    await page.open(server.url + "/console")
    await asyncio.to_thread(lambda: page.driver.find_element(By.ID, "try-file").send_keys(str(SPEECH)))
    await page.js("document.getElementById('try-send-file').click()")
    for _ in range(200):
        sid = next(
            (sid for sid, c in service.connections.items() if any(s.startswith("console-") for s in c.streams)), None
        )
        if sid is not None and any(s.inflight for s in service.connections[sid].streams.values()):
            break
        await asyncio.sleep(0.05)
    assert sid is not None, "the panel's stream never started"
    await server.app[SIO_KEY].disconnect(sid)
    status = await page.until(
        lambda d: (
            (t := d.execute_script("return document.getElementById('try-status').textContent")).startswith("failed")
            and t
        ),
        30,
        "the dropped connection reported",
    )
    assert "connection lost" in status, status
    # Free again: a second try runs (and is refused at once, for a pair the runtime does not dub).
    await page.js("const t = document.getElementById('try-target'); t.add(new Option('xx', 'xx')); t.value = 'xx';")
    await page.js("document.getElementById('try-status').textContent = ''")
    await page.js("document.getElementById('try-send-file').click()")
    await page.until(
        lambda d: (
            "UNSUPPORTED_LANGUAGE" in d.execute_script("return document.getElementById('try-status').textContent")
        ),
        60,
        "the second try answered",
    )


MARKUP = "<img src=x onerror=window.__pwned=1>"


async def test_markup_in_a_stream_id_and_an_error_message_is_shown_as_text(make_server: Any, page: Page) -> None:
    server = await make_server()
    recorder = await server.connect(stream_id=MARKUP)
    assert (await recorder.init(stream_id=MARKUP))[0] == "stream:ready"
    # An error message is the runtime's text, which may quote a client's input: put markup in one.
    error = ev.ErrorEvent(code="INVALID_PAYLOAD", message=f"bad {MARKUP}", retryable=False, stream_id=MARKUP)
    server.app[CONSOLE_KEY].observe("sid-x", error, "guide")
    await page.open(server.url + "/console")
    row = await page.row(MARKUP)
    assert MARKUP in row.values(), row
    text = await page.until(
        lambda d: d.execute_script("return document.getElementById('errors').textContent") or None, 10, "the error"
    )
    assert f"[{MARKUP}]: bad {MARKUP}" in text, text
    assert await page.js("return document.querySelectorAll('img').length") == 0
    assert await page.js("return window.__pwned === undefined")
    assert await page.errors() == []
