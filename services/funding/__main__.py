"""Runs funding: python -m services.funding."""

import uvicorn

from services.funding.bootstrap import create_app
from services.funding.settings import FundingSettings

settings = FundingSettings()  # type: ignore[call-arg]
uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_level="warning")
