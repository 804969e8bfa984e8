"""The floor: the cheapest relay Python can be, to show what no framework
can go below.

No HTTP framework, no parser library: asyncio streams on uvloop, the
request's head skipped and its body read by Content-Length, one connection
to the upstream per answer (no pool to keep), its chunked body read as it
comes and each `data:` line's JSON parsed once, each token written to the
client at once as a `delta` event, the response ended by closing the
connection. It checks nothing and saves nothing; every figure of a real relay
sits above it. bench/relay.py measures it beside the app and the peers.

    python -m bench.floor_relay --port 9300 --upstream-port 9100
"""

import argparse
import asyncio

import orjson
import uvloop

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n"
UPSTREAM_BODY = orjson.dumps({"model": "fake", "messages": [{"role": "user", "content": "?"}], "stream": True})


def upstream_request(port: int) -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:%d\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n%b" % (port, len(UPSTREAM_BODY), UPSTREAM_BODY)
    )


async def relay(client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter, upstream_port: int) -> None:
    head = await client_in.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    await client_in.readexactly(length)
    upstream_in, upstream_out = await asyncio.open_connection("127.0.0.1", upstream_port)
    try:
        upstream_out.write(upstream_request(upstream_port))
        await upstream_in.readuntil(b"\r\n\r\n")
        client_out.write(HEAD)
        tokens, pending = 0, b""
        while data := await upstream_in.read(65536):
            # Chunk sizes and SSE framing alike are lines; the JSON lines are the events.
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.startswith(b"data: {"):
                    continue
                choices = orjson.loads(line[6:])["choices"]
                if choices and (text := choices[0]["delta"].get("content")):
                    tokens += 1
                    client_out.write(b'event: delta\ndata: {"text":%b}\n\n' % orjson.dumps(text))
            if b"data: [DONE]" in data:
                break
        client_out.write(b'event: done\ndata: {"usage":{"tokens_out":%d}}\n\n' % tokens)
    finally:
        upstream_out.close()
        client_out.close()


async def serve(port: int, upstream_port: int) -> None:
    server = await asyncio.start_server(
        lambda reader, writer: relay(reader, writer, upstream_port), "127.0.0.1", port, backlog=2048
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.upstream_port))


if __name__ == "__main__":
    main()
