"""Runs the notifier: python -m services.notifier."""

import uvicorn

from services.notifier.bootstrap import create_app
from services.notifier.settings import NotifierSettings

settings = NotifierSettings()  # type: ignore[call-arg]
uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_level="warning")
