"""Runs the registry: python -m services.registry."""

from services.registry.bootstrap import create_app
from services.registry.settings import RegistrySettings
from shared.service import serve

settings = RegistrySettings()  # type: ignore[call-arg]
serve(create_app(settings), settings)
