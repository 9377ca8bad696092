"""Runs funding: python -m services.funding."""

from services.funding.bootstrap import create_app
from services.funding.settings import FundingSettings
from shared.service import serve

settings = FundingSettings()  # type: ignore[call-arg]
serve(create_app(settings), settings)
