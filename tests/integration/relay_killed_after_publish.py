"""A relay process that dies right after Kafka acknowledged a batch and before marking it published."""

from __future__ import annotations

import asyncio
import os
import sys

from berdaya.stack.access import access_from_env
from shared.db import open_database
from shared.messaging.kafka import KafkaAccess
from shared.messaging.relay import OutboxRelay
from tests.integration.messaging_fixtures import relay

EXIT_CODE = 17


class DiesBeforeMarking(OutboxRelay):
    async def _mark(self, conn, published, retry) -> None:  # noqa: ANN001
        os._exit(EXIT_CODE)  # no cleanup, no rollback: the way a crash or kill -9 leaves things


async def main(database_url: str, bootstrap: KafkaAccess | str) -> None:
    db = await open_database(database_url, max_size=4)
    await relay(db, database_url, bootstrap, cls=DiesBeforeMarking).run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], access_from_env(os.environ)))
