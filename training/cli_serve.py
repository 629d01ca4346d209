"""`nbo serve`: check the model, snapshot and decision log, then start the scoring API on loopback.

Mount with `app.command("serve")(serve)` (a plain function) or `app.add_typer(serve_app)`.
The checks run first in this process because a BentoML worker that fails at start-up is
restarted forever; here a missing or broken model stops start-up with one clear message.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import typer

from training.cli_common import console, error_console

serve_app = typer.Typer(help="Serve decisions, scores and explanations over HTTP.")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def serve(
    port: int = typer.Option(3000, "--port", "-p", min=1, max=65535, help="TCP port on 127.0.0.1."),
    model_uri: str = typer.Option(None, help="MLflow model URI (default NBO_MODEL_URI or models:/nbo@champion)."),
    snapshot: str = typer.Option(None, help="Snapshot SQLite file or postgresql:// URL (default NBO_SNAPSHOT)."),
    decision_log: Path = typer.Option(None, help="Decision log SQLite file (default NBO_DECISION_LOG)."),
    check_only: bool = typer.Option(False, help="Only check that the service can start, then exit."),
) -> None:
    """Start the scoring API on http://127.0.0.1:PORT (set NBO_API_KEY to require a bearer key).

    Example: nbo serve --port 3000, then
    curl -s -X POST http://127.0.0.1:3000/decide -H 'Content-Type: application/json'
    -d '{"customers": [{"customer_id": "C0000001"}]}'
    """
    from serving.config import ServingSettings
    from serving.decision_log import DecisionLog
    from serving.service import load_model
    from serving.snapshot_store import open_snapshot_store

    overrides = {"NBO_MODEL_URI": model_uri, "NBO_SNAPSHOT": snapshot,
                 "NBO_DECISION_LOG": None if decision_log is None else str(decision_log)}  # fmt: skip
    environment = {**os.environ, **{key: value for key, value in overrides.items() if value}}
    try:
        settings = ServingSettings.from_env(environment)
        model = load_model(settings.model_uri)
        store = open_snapshot_store(settings.snapshot)
        as_of = store.as_of
        store.close()
        DecisionLog(settings.decision_log).close()
    except (RuntimeError, ValueError, OSError) as error:
        error_console.print(f"[bold red]cannot start the service:[/] {error}")
        raise typer.Exit(code=1) from error
    console.print(
        f"model {settings.model_uri} {model.versions}, catalog {model.catalog_version}; snapshot {settings.snapshot} "
        f"as of {as_of}; decision log {settings.decision_log}; API key {'required' if settings.api_key else 'off'}"
    )
    if check_only:
        return
    bentoml = shutil.which("bentoml", path=str(Path(sys.executable).parent)) or "bentoml"
    console.print(f"serving on http://127.0.0.1:{port} (Ctrl-C stops); try, from another terminal:")
    console.print(curl_example(port, settings.api_key is not None), markup=False, highlight=False, soft_wrap=True)
    os.chdir(PROJECT_ROOT)
    os.execvpe(bentoml, [bentoml, "serve", "serving.service:NboService", "--host", "127.0.0.1", "--port", str(port)],
               environment)  # fmt: skip


serve_app.command("serve")(serve)


def curl_example(port: int, with_key: bool, customer_id: str = "C0000001") -> str:
    """A /decide call to paste (the simulator's first customer; an unknown id comes back as a per-item error)."""
    key = " -H \"Authorization: Bearer $NBO_API_KEY\"" if with_key else ""
    body = json.dumps({"customers": [{"customer_id": customer_id}]})
    return (
        f"curl -s -X POST http://127.0.0.1:{port}/decide -H 'Content-Type: application/json'{key} -d '{body}'"
    )


def publish(
    data: Path = typer.Option(..., help="Folder of contract tables or a DuckDB file."),
    as_of: str = typer.Option("end", help="Snapshot time; 'end' = end of the data."),
    to: str = typer.Option(None, help="Snapshot SQLite file or postgresql:// URL (default NBO_SNAPSHOT)."),
    catalog: Path = typer.Option(None, help="Offers catalog YAML (default: the built-in catalog)."),
) -> None:
    """Build the latest snapshot with customer context (consents, time zone, last sends) for the service.

    Example: nbo publish --data demo/world --as-of end --to demo/snapshot.sqlite
    """
    from features.catalog import DEFAULT_CATALOG_PATH, load_catalog
    from features.io import open_dataset
    from serving.config import ServingSettings
    from serving.snapshot_store import publish_snapshot
    from training.cli_common import friendly_errors, resolve_as_of
    from training.decide import decision_frame

    with friendly_errors():
        dataset = open_dataset(data)
        as_of = resolve_as_of(as_of, data, dataset)
        offers = load_catalog(catalog or DEFAULT_CATALOG_PATH).offer_ids
        frame = decision_frame(dataset, as_of, offers)
        target = to or ServingSettings.from_env().snapshot
        where = publish_snapshot(frame, target)
    console.print(f"Published {len(frame):,} customers as of {as_of} to {where}")
