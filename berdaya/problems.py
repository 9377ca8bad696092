"""What a service's refusal says, in its own words, for the command line to show."""

from __future__ import annotations

import httpx


def problem_detail(response: httpx.Response) -> str:
    """What the service's problem document says, in its words (its detail names the wrong fields), not its JSON; the
    start of the body when it is no problem document (a proxy's page, say)."""
    try:
        return str(response.json()["detail"])[:600]
    except (ValueError, KeyError, TypeError):
        return response.text[:300]
