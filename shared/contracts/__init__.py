"""The integration-event contracts: the envelope, every payload, and the topics they travel on."""

from shared.contracts.catalog import CATALOG, EventCatalog, UnknownEvent
from shared.contracts.envelope import ContractError, Envelope, EventPayload, new_envelope

__all__ = [
    "CATALOG",
    "ContractError",
    "Envelope",
    "EventCatalog",
    "EventPayload",
    "UnknownEvent",
    "new_envelope",
]

# Importing the contract modules registers their payloads in CATALOG.
from shared.contracts import funding as _funding  # noqa: E402,F401
from shared.contracts import public as _public  # noqa: E402,F401
from shared.contracts import registry as _registry  # noqa: E402,F401
from shared.contracts import training as _training  # noqa: E402,F401
