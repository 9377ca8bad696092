"""Runs the registry: python -m services.registry."""

import uvicorn

from services.registry.bootstrap import create_app
from services.registry.settings import RegistrySettings

settings = RegistrySettings()  # type: ignore[call-arg]
uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_level="warning")
