"""Event loops the asyncio tests run hotsock on, beyond asyncio's and uvloop's."""
import asyncio


class NoReadinessLoop(asyncio.SelectorEventLoop):
    """A loop without readiness callbacks (as a proactor loop has none):
    hotsock.asyncio must say so, naming the loop."""

    def add_reader(self, fd, callback, *args):
        raise NotImplementedError

    def add_writer(self, fd, callback, *args):
        raise NotImplementedError
