"""Runs training: python -m services.training."""

from services.training.bootstrap import create_app
from services.training.settings import TrainingSettings
from shared.service import serve

settings = TrainingSettings()  # type: ignore[call-arg]
serve(create_app(settings), settings)
