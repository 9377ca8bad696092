"""The local outbox: the channel that needs no gateway. A delivery on it is "delivered" by writing the message to the
`local_outbox` table in the same transaction that marks it delivered (so exactly once, whatever crashes), and shown by
`GET /messages`. With `NOTIFIER_LOCAL_OUTBOX_DIR` set, each is also written as a text file a person can open
(`<dir>/<YYYY-MM-DD WITA>/<delivery id>.txt`), after the commit; writing one again replaces it with the same text.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shared.reference.wita import WITA


@dataclass(frozen=True, slots=True)
class LocalLetter:
    delivery_id: uuid.UUID
    recipient: str
    subject: str | None
    body: str
    template: str
    delivered_at: datetime


class LocalOutboxFiles:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def describe(self) -> str:
        where = f"; files in {self.directory}" if self.directory else ""
        return f"local outbox (table local_outbox, GET /messages{where})"

    def write(self, letter: LocalLetter) -> Path | None:
        if self.directory is None:
            return None
        day = letter.delivered_at.astimezone(WITA)
        folder = self.directory / f"{day:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{letter.delivery_id}.txt"
        lines = [f"Kepada: {letter.recipient}", f"Waktu: {day:%Y-%m-%d %H.%M} WITA", f"Jenis: {letter.template}"]
        if letter.subject:
            lines.append(f"Perihal: {letter.subject}")
        text = "\n".join([*lines, "", letter.body, ""])
        partial = path.with_suffix(".tmp")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
        return path
