"""Runs training: python -m services.training."""

import uvicorn

from services.training.bootstrap import create_app
from services.training.settings import TrainingSettings

settings = TrainingSettings()  # type: ignore[call-arg]
uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_level="warning")
