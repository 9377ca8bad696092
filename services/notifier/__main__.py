"""Runs the notifier: python -m services.notifier."""

from services.notifier.bootstrap import create_app
from services.notifier.settings import NotifierSettings
from shared.service import serve

settings = NotifierSettings()  # type: ignore[call-arg]
serve(create_app(settings), settings)
