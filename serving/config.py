"""Serving settings, read from environment variables when the service starts (never at import).

| variable | meaning | default |
|---|---|---|
| NBO_MODEL_URI | MLflow URI of the deployable `nbo` pyfunc | models:/nbo@champion |
| NBO_SNAPSHOT | latest snapshot: SQLite file from `publish_snapshot`, or postgresql:// URL | demo/snapshot.sqlite |
| NBO_DECISION_LOG | SQLite file of the durable decision log | demo/decision_log.sqlite |
| NBO_API_KEY | when set, every endpoint except health needs `Authorization: Bearer <key>` | unset |
| NBO_MAX_BODY_BYTES | largest accepted request body; larger bodies get 413 | 8388608 (8 MiB) |
| NBO_RELOAD_SECONDS | seconds between checks of the registry alias for a new champion (0 = off) | 60 |
| NBO_SNAPSHOT_MEMORY_ROWS | a SQLite snapshot with at most this many customers is held in memory (0 = never) | 250000 |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_MODEL_URI = "models:/nbo@champion"
DEFAULT_SNAPSHOT = "demo/snapshot.sqlite"
DEFAULT_DECISION_LOG = "demo/decision_log.sqlite"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_RELOAD_SECONDS = 60.0
#: Snapshots up to this many customers are held in memory (~1.3 KB per customer with ~150 columns).
DEFAULT_SNAPSHOT_MEMORY_ROWS = 250_000
#: Most customers in one /decide or /score request.
MAX_CUSTOMERS_PER_REQUEST = 10_000
#: Most customers in one /explain request (SHAP is the expensive part).
MAX_CUSTOMERS_PER_EXPLAIN = 100
#: Paths that never need the API key (liveness and readiness probes).
HEALTH_PATHS = frozenset({"/healthz", "/livez", "/readyz"})


@dataclass(frozen=True)
class ServingSettings:
    """Where the model, snapshot and decision log are, and the request guards."""

    model_uri: str = DEFAULT_MODEL_URI
    snapshot: str = DEFAULT_SNAPSHOT
    decision_log: str = DEFAULT_DECISION_LOG
    api_key: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    reload_seconds: float = DEFAULT_RELOAD_SECONDS
    snapshot_memory_rows: int = DEFAULT_SNAPSHOT_MEMORY_ROWS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingSettings:
        """Settings from `environ` (default: the process environment); bad values name the variable."""
        environ = os.environ if environ is None else environ
        raw_limit = environ.get("NBO_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES))
        try:
            max_body_bytes = int(raw_limit)
        except ValueError:
            raise ValueError(
                f"NBO_MAX_BODY_BYTES must be a whole number of bytes, got {raw_limit!r}; e.g. 8388608"
            ) from None
        if max_body_bytes < 1024:
            raise ValueError(f"NBO_MAX_BODY_BYTES must be at least 1024 bytes, got {max_body_bytes}")
        raw_reload = environ.get("NBO_RELOAD_SECONDS", str(DEFAULT_RELOAD_SECONDS))
        try:
            reload_seconds = float(raw_reload)
        except ValueError:
            raise ValueError(f"NBO_RELOAD_SECONDS must be a number of seconds (0 = off), got {raw_reload!r}") from None
        if not 0 <= reload_seconds < float("inf"):
            raise ValueError(f"NBO_RELOAD_SECONDS must be 0 (off) or a positive number of seconds, got {raw_reload!r}")
        raw_memory = environ.get("NBO_SNAPSHOT_MEMORY_ROWS", str(DEFAULT_SNAPSHOT_MEMORY_ROWS))
        try:
            memory_rows = int(raw_memory)
        except ValueError:
            memory_rows = -1
        if memory_rows < 0:
            raise ValueError(
                "NBO_SNAPSHOT_MEMORY_ROWS must be a whole number of customers (0 = never in memory), "
                f"got {raw_memory!r}"
            )
        return cls(
            model_uri=environ.get("NBO_MODEL_URI") or DEFAULT_MODEL_URI,
            snapshot=environ.get("NBO_SNAPSHOT") or DEFAULT_SNAPSHOT,
            decision_log=environ.get("NBO_DECISION_LOG") or DEFAULT_DECISION_LOG,
            api_key=environ.get("NBO_API_KEY") or None,
            max_body_bytes=max_body_bytes,
            reload_seconds=reload_seconds,
            snapshot_memory_rows=memory_rows,
        )
