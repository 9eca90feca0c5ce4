"""The scraper against real loopback HTTP: good, slow, failing and junk pods."""

import asyncio

from aiohttp import web

from livedub.operator.scaling.scrape import ScrapeTarget, scrape_all


async def test_scrape_all_reports_unreachable_as_none() -> None:
    async def good(_: web.Request) -> web.Response:
        return web.Response(text="# TYPE sts_fragments_in_flight gauge\nsts_fragments_in_flight 3\n")

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return await good(_)

    async def junk(_: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>")

    app = web.Application()
    app.router.add_get("/good", good)
    app.router.add_get("/slow", slow)
    app.router.add_get("/junk", junk)

    async def fail(_: web.Request) -> web.Response:
        return web.Response(status=503)

    app.router.add_get("/fail", fail)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        base = f"http://127.0.0.1:{port}"
        targets = [ScrapeTarget(name, f"{base}/{name}") for name in ("good", "slow", "junk", "fail")]
        targets.append(ScrapeTarget("closed", "http://127.0.0.1:1/metrics"))
        started = asyncio.get_running_loop().time()
        result = await scrape_all(targets, timeout_s=0.3, concurrency=2)
        elapsed = asyncio.get_running_loop().time() - started
    finally:
        await runner.cleanup()
    assert result["good"] is not None and result["good"].in_flight == 3
    assert [result[n] for n in ("slow", "junk", "fail", "closed")] == [None] * 4
    assert elapsed < 0.9  # the slow pod costs its timeout, not its 1 s
