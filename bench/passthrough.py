"""The floor of a Python proxy: uvicorn (uvloop, httptools) and one shared aiohttp session.

``python bench/passthrough.py UPSTREAM PORT`` forwards every request's method, path, body and
authorization to ``UPSTREAM`` and relays the answer (an event stream as it arrives). It runs in
the environment bench/proxy.py builds (aiohttp comes with LiteLLM there).
"""

import sys

import aiohttp
import uvicorn

UPSTREAM, PORT = sys.argv[1], int(sys.argv[2])
shared: dict[str, aiohttp.ClientSession] = {}


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            shared["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            await send({"type": "lifespan.startup.complete"})
        await shared["session"].close()
        return await send({"type": "lifespan.shutdown.complete"})
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    auth = dict(scope["headers"]).get(b"authorization", b"").decode()
    headers = {"content-type": "application/json", "authorization": auth}
    url = UPSTREAM + scope["path"]
    async with shared["session"].request(scope["method"], url, data=body, headers=headers) as up:
        kind = up.headers.get("content-type", "application/json").encode()
        start = {"type": "http.response.start", "status": up.status}
        if not kind.startswith(b"text/event-stream"):
            data = await up.read()
            length = str(len(data)).encode()
            await send({**start, "headers": [(b"content-type", kind), (b"content-length", length)]})
            return await send({"type": "http.response.body", "body": data})
        await send({**start, "headers": [(b"content-type", kind)]})
        async for piece in up.content.iter_any():
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=PORT, loop="uvloop", http="httptools", log_level="error"
    )
