"""A TCP proxy on loopback whose connections a test can cut, as a network
drop does: the browser talks to the app through it, and `cut()` aborts every
open connection and refuses new ones until `restore()`. `stall()` keeps the
connections open but passes nothing either way, as a hung server or a
black-holed network does, until `resume()`."""

import asyncio
import threading


class CutProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.offline = False
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._transports: set[asyncio.WriteTransport] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> "CutProxy":
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, "127.0.0.1", 0))
        return self

    def __exit__(self, *exc_info) -> None:
        self.cut()
        self._call(self._shut_down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    async def _shut_down(self) -> None:
        self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        self.offline = True
        self._loop.call_soon_threadsafe(self._abort_all)

    def restore(self) -> None:
        self.offline = False

    def stall(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(5)

    def _abort_all(self) -> None:
        for transport in list(self._transports):
            transport.abort()  # a reset, not a clean close: nothing more gets through
        self._transports.clear()

    async def _accept(self, client_reader, client_writer) -> None:
        if self.offline:
            client_writer.transport.abort()
            return
        app_reader, app_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._transports |= {client_writer.transport, app_writer.transport}
        await asyncio.gather(self._pipe(client_reader, app_writer), self._pipe(app_reader, client_writer))

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._transports.discard(writer.transport)
            writer.transport.abort()
