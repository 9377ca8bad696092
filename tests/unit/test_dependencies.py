"""Packages the services need installed for their measured cost, not only for their behaviour."""

import asyncio
import importlib.util
import sys


def test_httpcore_finds_the_event_loop_through_sniffio_instead_of_a_failed_import_per_request():
    # Without sniffio, httpcore's `import sniffio` fails and searches sys.path again several times a request.
    assert importlib.util.find_spec("sniffio") is not None, "sniffio is missing: pip install -e . again"
    from httpcore._synchronization import current_async_library

    async def ask() -> str:
        return current_async_library()

    assert asyncio.run(ask()) == "asyncio"
    assert "sniffio" in sys.modules  # imported once, then found in sys.modules at every later ask
