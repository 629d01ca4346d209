"""What bench_serving.py measures against: a registered `nbo` model, its snapshot, two servers.

The model is the one `benchmarks/bench_decide.py` builds: churn and uplift trained by the
project's own training code on a simulated world, assembled into `NboModel` like `nbo package`,
logged to a throw-away MLflow registry as `nbo@champion`; the snapshot is what `nbo publish`
writes (features plus consents, time zone and last sends). Both servers run on 127.0.0.1 in
their own process groups and are stopped by the caller (`stop`), also on error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

logger = logging.getLogger("bench_serving")

__all__ = ["BenchModel", "MlflowServeProcess", "build_bench_model"]


@dataclass(frozen=True)
class BenchModel:
    """A registered model and its published snapshot."""

    directory: Path
    tracking_uri: str
    model_uri: str
    snapshot_path: Path
    frame: pd.DataFrame
    customers: int
    trials: int
    churn_trees: int
    uplift_learners: object
    seconds: float


def build_bench_model(directory: Path, customers: int, trials: int, seed: int = 1) -> BenchModel:
    """Train (bench_decide's `train_models`), package, register and publish under `directory`.

    A directory that already holds a model built with the same settings is reused (development runs).
    """
    import pickle

    import mlflow

    saved = directory / "bench_model.pkl"
    if saved.is_file():
        bench = pickle.loads(saved.read_bytes())
        if (bench.customers, bench.trials) == (customers, trials):
            logger.info("reusing the model built in %s", directory)
            return bench
    from bench_decide import train_models

    from features.catalog import load_catalog
    from features.dataset import Dataset
    from features.simulate import simulate_world
    from serving.snapshot_store import publish_snapshot
    from training.decide import decision_frame
    from training.nbo_model import assemble_nbo_model, log_nbo_model

    started = time.perf_counter()
    churn, uplift, end = train_models(customers, seed, trials)
    world = simulate_world(customers, months=12, seed=seed)  # the same world train_models used
    dataset = Dataset.from_frames(world.contract_tables())
    catalog = load_catalog(ROOT / "features" / "default_catalog.yaml")
    frame = decision_frame(dataset, end, catalog.offer_ids)
    model = assemble_nbo_model(churn, uplift, catalog, frame)
    # What BentoML's plain /decide asks of the model (it sets this itself); registered so, the
    # pyfunc behind `mlflow models serve` does the same work (no SHAP drivers) for a fair comparison.
    model.explain = "none"

    tracking_uri = f"sqlite:///{directory / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("bench-serving")
    with mlflow.start_run():
        info = log_nbo_model(model, frame.head(20))
    mlflow.MlflowClient().set_registered_model_alias("nbo", "champion", info.registered_model_version)
    snapshot_path = directory / "snapshot.sqlite"
    publish_snapshot(frame, snapshot_path)
    bench = BenchModel(
        directory=directory,
        tracking_uri=tracking_uri,
        model_uri="models:/nbo@champion",
        snapshot_path=snapshot_path,
        frame=frame,
        customers=customers,
        trials=trials,
        churn_trees=int(churn.best_iteration_),
        uplift_learners=uplift.metadata.get("learners"),
        seconds=time.perf_counter() - started,
    )
    saved.write_bytes(pickle.dumps(bench))
    return bench


class MlflowServeProcess:
    """`mlflow models serve -m <uri> --env-manager local` on 127.0.0.1 in its own process group."""

    def __init__(self, model_uri: str, environment: dict[str, str], log_path: Path, port: int) -> None:
        self.model_uri = model_uri
        path = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
        self.environment = {**os.environ, **environment, "PATH": path}  # it runs `uvicorn` from PATH
        self.log_path = log_path
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> MlflowServeProcess:
        """Start and wait for GET /ping; RuntimeError (after stopping it) when it never answers."""
        mlflow = Path(sys.executable).with_name("mlflow")
        command = [str(mlflow), "models", "serve", "-m", self.model_uri, "--env-manager", "local",
                   "-h", "127.0.0.1", "-p", str(self.port)]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited with {self.process.returncode}; see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ping", timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow models serve did not answer /ping in {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM the process group it started (uvicorn is a child), SIGKILL after 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # stragglers of the group (a uvicorn worker)
