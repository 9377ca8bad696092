"""A relay as a process of its own, holding the lease as `holder`, so a test can stop, freeze or kill it."""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from shared.db import Database
from tests.integration.messaging_fixtures import relay


async def main(database_url: str, bootstrap: str, holder: str, lease_seconds: float) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4, server_settings={"application_name": holder})
    await relay(Database(pool), database_url, bootstrap, holder=holder, lease_seconds=lease_seconds).run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
