"""The floor under the HTTP servers measured: an ASGI app that reads the request and answers, nothing more.

Served by the same uvicorn with the same options as `readrate serve` and the K2 baseline, it
is what any Python endpoint served this way costs before doing anything: the HTTP parsing,
the ASGI calls and the socket writes. The collector scenario runs POST /v1/read against it,
so what readrate's own code costs per read is the difference between the two.

    python -m bench.floor_app --port 8800 --workers 2
"""

from __future__ import annotations

import click

from .k2_endpoint import UVICORN_OPTIONS

_ANSWERS = {
    method: (status, [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))], body)
    for method, status, body in (("POST", 202, b'{"status":"queued"}'), ("GET", 200, b'{"status":"ok"}'))
}


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    status, headers, body = _ANSWERS["POST" if scope["method"] == "POST" else "GET"]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), required=True, help="Port to listen on.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Server processes.")
def main(host: str, port: int, workers: int) -> None:
    """Serve the do-nothing ASGI app: 202 to every POST, 200 to everything else."""
    import uvicorn

    uvicorn.run("bench.floor_app:app", host=host, port=port, workers=workers, **UVICORN_OPTIONS)


if __name__ == "__main__":
    main(prog_name="python -m bench.floor_app")
