"""The `nbo` command line, MLflow tracking, Optuna tuning and promotion: thin glue."""
