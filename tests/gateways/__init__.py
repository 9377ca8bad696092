"""Local servers that speak each gateway's documented protocol, for the notifier's integration and end-to-end tests
(and for a demo or a chaos run that wants real gateway traffic without an account):

- whatsapp_cloud.py: the WhatsApp Business Cloud API's send endpoint, its answers and errors, and its signed
  webhooks (statuses and owners' replies) posted back to the notifier;
- zenziva.py: Zenziva's SMS API and an inbound-reply callback;
- smtp.py: an SMTP server (aiosmtpd) that keeps what it receives.

Each records what it was sent and can be told to misbehave for a given recipient (answer 5xx, hang past the client's
timeout, refuse the number). `python -m tests.gateways --help` runs them standalone.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from berdaya.stack.process import free_port


class LocalServer:
    """An ASGI app on uvicorn, in this event loop, on a free port of 127.0.0.1."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                     lifespan="off"))  # fmt: skip
        self._task: asyncio.Task | None = None

    async def start(self) -> LocalServer:
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(500):
            if self._server.started:
                return self
            if self._task.done():
                await self._task
            await asyncio.sleep(0.01)
        raise RuntimeError(f"the local server on port {self.port} did not start")

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task

    async def __aenter__(self) -> LocalServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
