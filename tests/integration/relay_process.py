"""A relay as a process of its own, holding the lease as `holder`, so a test can stop, freeze or kill it."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg

from berdaya.stack.access import access_from_env
from shared.db import Database
from shared.messaging.kafka import KafkaAccess
from tests.integration.messaging_fixtures import relay


async def main(database_url: str, bootstrap: KafkaAccess | str, holder: str, lease_seconds: float) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4, server_settings={"application_name": holder})
    await relay(Database(pool), database_url, bootstrap, holder=holder, lease_seconds=lease_seconds).run(asyncio.Event())


if __name__ == "__main__":
    # The broker and its credential come as the services get theirs: from the environment, never the command line.
    asyncio.run(main(sys.argv[1], access_from_env(os.environ), sys.argv[2], float(sys.argv[3])))
