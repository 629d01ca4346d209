"""Reading customer history, validating it against the data contract, and computing
point-in-time feature snapshots. Pure functions of data: no MLflow, no BentoML."""
