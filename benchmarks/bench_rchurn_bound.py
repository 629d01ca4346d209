"""R-churn (issue 4): why ROC-AUC >= 0.76 with Brier <= 0.20 is beyond Online Retail's transactions.

Protocol: ../shared/data/DATA.md, "R-churn". Test snapshot as of 2011-09-10 (3,370 customers
with a purchase before it); churn = no purchase in the next 90 days. Two parts:

1. `--bound`, the optimistic bound. It CHEATS ON TIME: 5-fold stratified cross-validation inside
   the test snapshot itself (seeds `--seeds`), so the models learn from the test window's own
   labels (autumn to Christmas 2011, a season no honest training window contains, and its base
   rate). For the feature families base, base+product, base+dec, base+dyn and all it reports the
   out-of-fold AUC and Brier of a logistic regression on signed-log features, a fixed LightGBM
   (600 trees, learning rate 0.01, 4 leaves) and their probability average. An honest model of
   these features is not expected to beat it, and it already stays below AUC 0.76.
2. `--honest`, the protocol run: models trained on the stacked snapshots 2011-01-10 .. 2011-06-12
   (labels end by 2011-09-10); 20% of the last snapshot's customers are held out (all their rows
   leave the fit) for early stopping and Platt scaling; every configuration (feature sets base and
   base+product+dyn; LR, fixed LightGBM, early-stopped LightGBM, LR+LightGBM average) is scored
   once on the test snapshot, raw and Platt-calibrated. The ORACLE column shifts the raw scores'
   intercept so their mean equals the test churn rate: it uses test labels (cheats) and shows the
   Brier these scores would reach if the test base rate were known in advance.

LightGBM runs with n_jobs=1 and BLAS with one thread, so figures do not depend on the machine's
cores. Writes benchmarks/out/rchurn_bound.json (the parts run), about 35 s on one core.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_rchurn_bound.py [--bound] [--honest] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import lightgbm
import numpy as np
import pandas as pd
import sklearn
from scipy.optimize import brentq
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "online_retail.parquet"
DEFAULT_OUT = ROOT / "benchmarks" / "out" / "rchurn_bound.json"
EXPECTED_MD5 = "ce7dff3fe52f195fea95992c2427a740"
TARGET_AUC, TARGET_BRIER = 0.76, 0.20

TEST_AS_OF = pd.Timestamp("2011-09-10")
HORIZON_DAYS = 90
TRAINING_AS_OFS = tuple(
    pd.Timestamp(day) for day in ("2011-01-10", "2011-02-10", "2011-03-12", "2011-04-11", "2011-05-11", "2011-06-12")
)
SEASONAL_WORDS = [
    "CHRISTMAS", "XMAS", "ADVENT", "SANTA", "REINDEER", "NATIVITY", "SNOWMAN", "SNOWFLAKE", "BAUBLE", "TINSEL", "NOEL",
]  # fmt: skip
TOP_COUNTRIES = ["Germany", "France", "EIRE", "Spain", "Netherlands", "Belgium", "Switzerland", "United Kingdom"]
BOUND_FAMILIES = {
    "base": ("base",),
    "base+product": ("base", "product"),
    "base+dec": ("base", "dec"),
    "base+dyn": ("base", "dyn"),
    "all": ("base", "product", "dec", "dyn"),
}
HONEST_FAMILIES = {"base": ("base",), "base+product+dyn": ("base", "product", "dyn")}
FAMILY_COLUMNS = {
    "base": [
        "n_orders", "recency", "tenure", "monetary", "aov", "last_amount", "orders_14", "spend_14", "orders_30",
        "spend_30", "orders_60", "spend_60", "orders_90", "spend_90", "orders_180", "spend_180", "decay_30", "decay_90",
        "mean_gap", "last_gap", "median_gap", "rate", "overdue", "expected_in_h", "trend_90", "lines_per_order",
        "mean_hour", "distinct_products", "median_price", "median_qty",
    ],
    "product": [
        "seas_line_share", "seas_spend_share", "q4peak_mean", "q4peak_share", "cat_breadth", "mean_pop",
        "repeat_prod_share",
    ],
    "dec": ["dec10_orders", "dec10_spend", "dec10_active", "lastwk_orders_7", "lastwk_orders_21", "lastwk_orders_42"],
    "dyn": [
        "gap_cv", "size_slope", "last_vs_mean_amt", "n_return_lines", "n_cancel_inv", "return_amt_share", "is_uk",
        "country",
    ],
}  # fmt: skip
SHARED_LIGHTGBM = {"objective": "binary", "subsample": 0.8, "subsample_freq": 1, "n_jobs": 1, "verbose": -1}
FIXED_LIGHTGBM = SHARED_LIGHTGBM | {
    "num_leaves": 4,
    "learning_rate": 0.01,
    "n_estimators": 600,
    "min_child_samples": 40,
    "colsample_bytree": 0.5,
    "reg_lambda": 5.0,
}
EARLY_STOPPED_LIGHTGBM = SHARED_LIGHTGBM | {
    "num_leaves": 7,
    "learning_rate": 0.03,
    "n_estimators": 3000,
    "min_child_samples": 30,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
}


# ----------------------------------------------------------------------------------------------
# Features (every value uses only rows before as_of; the label only rows in the horizon)
# ----------------------------------------------------------------------------------------------


def prepare_lines(raw: pd.DataFrame) -> pd.DataFrame:
    """Invoice lines with a CustomerID, flagged `negative` (return or cancellation) and `seasonal`."""
    lines = raw[raw["CustomerID"].notna()].copy()
    lines["InvoiceDate"] = pd.to_datetime(lines["InvoiceDate"])
    lines["CustomerID"] = lines["CustomerID"].astype(int)
    lines["InvoiceNo"] = lines["InvoiceNo"].astype(str)
    description = lines["Description"].fillna("").astype(str).str.upper().str.strip()
    lines["Description"] = description
    lines["amount"] = lines["Quantity"] * lines["UnitPrice"]
    lines["negative"] = (lines["Quantity"] <= 0) | lines["InvoiceNo"].str.startswith("C")
    lines["seasonal"] = description.str.contains("|".join(SEASONAL_WORDS), regex=True)
    lines["last_word"] = description.str.split().str[-1].fillna("")
    return lines


def orders_of(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per invoice (customer, first timestamp, amount, line count), sorted by customer and time."""
    orders = lines.groupby("InvoiceNo").agg(
        customer=("CustomerID", "first"),
        ts=("InvoiceDate", "min"),
        amount=("amount", "sum"),
        n_lines=("StockCode", "size"),
    )
    return orders.reset_index().sort_values(["customer", "ts"])


def build_features(lines: pd.DataFrame, as_of: pd.Timestamp, families: tuple[str, ...]) -> pd.DataFrame:
    """One row per customer with a purchase before as_of: the families' columns, `churned`, `as_of`."""
    as_of = pd.Timestamp(as_of)
    before = lines[lines["InvoiceDate"] < as_of]
    history = before[~before["negative"]]
    orders = orders_of(history)
    orders["age"] = (as_of - orders["ts"]) / pd.Timedelta(days=1)
    by_customer = orders.groupby("customer")
    features = pd.DataFrame(index=by_customer.size().index)
    features.index.name = "cid"
    features["n_orders"] = by_customer.size()
    features["recency"] = by_customer["age"].min()
    features["tenure"] = by_customer["age"].max()
    features["monetary"] = by_customer["amount"].sum()
    features["aov"] = by_customer["amount"].mean()
    features["last_amount"] = by_customer["amount"].last()
    for window in (14, 30, 60, 90, 180):
        recent = orders[orders["age"] <= window].groupby("customer")
        features[f"orders_{window}"] = recent.size().reindex(features.index).fillna(0)
        features[f"spend_{window}"] = recent["amount"].sum().reindex(features.index).fillna(0)
    for half_life in (30, 90):
        orders[f"decay_{half_life}"] = 0.5 ** (orders["age"] / half_life)
        features[f"decay_{half_life}"] = orders.groupby("customer")[f"decay_{half_life}"].sum()
    orders["gap"] = orders.groupby("customer")["ts"].diff() / pd.Timedelta(days=1)
    gaps = orders.groupby("customer")["gap"]
    features["mean_gap"] = gaps.mean()
    features["last_gap"] = gaps.last()
    features["median_gap"] = gaps.median()
    features["rate"] = features["n_orders"] / np.maximum(features["tenure"], 1)
    features["overdue"] = features["recency"] / features["mean_gap"].clip(lower=1)
    features["expected_in_h"] = features["rate"] * HORIZON_DAYS
    features["trend_90"] = features["orders_90"] / (1 + features["orders_180"] - features["orders_90"])
    features["lines_per_order"] = by_customer["n_lines"].mean()
    orders["hour"] = orders["ts"].dt.hour + orders["ts"].dt.minute / 60
    features["mean_hour"] = orders.groupby("customer")["hour"].mean()
    history_by_customer = history.groupby("CustomerID")
    features["distinct_products"] = history_by_customer["StockCode"].nunique().reindex(features.index)
    features["median_price"] = history_by_customer["UnitPrice"].median().reindex(features.index)
    features["median_qty"] = history_by_customer["Quantity"].median().reindex(features.index)
    if "product" in families:
        add_product_features(features, history)
    if "dec" in families:
        add_december_features(features, orders)
    if "dyn" in families:
        add_dynamics_features(features, orders, before, history)
    future = lines[~lines["negative"] & (lines["InvoiceDate"] >= as_of)]
    buyers = future.loc[future["InvoiceDate"] < as_of + pd.Timedelta(days=HORIZON_DAYS), "CustomerID"].unique()
    features["churned"] = (~features.index.isin(buyers)).astype(int)
    features["as_of"] = as_of
    return features


def add_product_features(features: pd.DataFrame, history: pd.DataFrame) -> None:
    """What a customer buys: seasonal share, December-2010 peak of their products, breadth, popularity."""
    index = features.index
    by_customer = history.groupby("CustomerID")
    seasonal = history[history["seasonal"]].groupby("CustomerID")
    features["seas_line_share"] = (seasonal.size() / by_customer.size()).reindex(index).fillna(0)
    features["seas_spend_share"] = (seasonal["amount"].sum() / by_customer["amount"].sum()).reindex(index).fillna(0)
    # A product's share of units sold in Dec 2010 (the only Q4 before the test), over that month's share of lines.
    in_december = history["InvoiceDate"] < pd.Timestamp("2011-01-01")
    units = history.groupby("StockCode")["Quantity"].sum()
    december_units = history[in_december].groupby("StockCode")["Quantity"].sum().reindex(units.index).fillna(0)
    peak = (december_units / units) / max(in_december.mean(), 1e-9)
    product_peak = history["StockCode"].map(peak)
    peaked = history.assign(peak=product_peak, peaky=(product_peak > 2).astype(float)).groupby("CustomerID")
    features["q4peak_mean"] = peaked["peak"].mean().reindex(index)
    features["q4peak_share"] = peaked["peaky"].mean().reindex(index)
    features["cat_breadth"] = by_customer["last_word"].nunique().reindex(index)
    buyers = history.groupby("StockCode")["CustomerID"].nunique()
    popularity = history.assign(pop=np.log1p(history["StockCode"].map(buyers))).groupby("CustomerID")["pop"]
    features["mean_pop"] = popularity.mean().reindex(index)
    repeaters = index[features["n_orders"] >= 2]
    repeat_buyers = history[history["CustomerID"].isin(repeaters)].groupby("StockCode")["CustomerID"].nunique()
    repeat_share = repeat_buyers.reindex(buyers.index).fillna(0) / buyers
    shared = history.assign(share=history["StockCode"].map(repeat_share)).groupby("CustomerID")["share"]
    features["repeat_prod_share"] = shared.mean().reindex(index)


def add_december_features(features: pd.DataFrame, orders: pd.DataFrame) -> None:
    """Activity before Christmas 2010 and in the last 7, 21 and 42 days."""
    december = orders[(orders["ts"] >= pd.Timestamp("2010-12-01")) & (orders["ts"] < pd.Timestamp("2010-12-24"))]
    december = december.groupby("customer")
    features["dec10_orders"] = december.size().reindex(features.index).fillna(0)
    features["dec10_spend"] = december["amount"].sum().reindex(features.index).fillna(0)
    features["dec10_active"] = (features["dec10_orders"] > 0).astype(float)
    for window in (7, 21, 42):
        recent = orders[orders["age"] <= window].groupby("customer")
        features[f"lastwk_orders_{window}"] = recent.size().reindex(features.index).fillna(0)


def add_dynamics_features(
    features: pd.DataFrame, orders: pd.DataFrame, before: pd.DataFrame, history: pd.DataFrame
) -> None:
    """Gap regularity, order-size trend, returns and cancellations, country."""
    index = features.index
    gaps = orders.groupby("customer")["gap"]
    features["gap_cv"] = gaps.std() / gaps.mean()
    log_amount = np.log1p(orders["amount"].clip(lower=0))
    order_number = orders.groupby("customer").cumcount()
    centred_number = order_number - order_number.groupby(orders["customer"]).transform("mean")
    centred_amount = log_amount - log_amount.groupby(orders["customer"]).transform("mean")
    covariance = (centred_number * centred_amount).groupby(orders["customer"]).sum()
    variance = (centred_number**2).groupby(orders["customer"]).sum()
    slope = covariance / variance.replace(0, np.nan)  # least-squares slope of log amount on order number
    slope[features["n_orders"] < 3] = np.nan
    features["size_slope"] = slope
    features["last_vs_mean_amt"] = features["last_amount"] / features["aov"]
    negative = before[before["negative"]].groupby("CustomerID")
    features["n_return_lines"] = negative.size().reindex(index).fillna(0)
    features["n_cancel_inv"] = negative["InvoiceNo"].nunique().reindex(index).fillna(0)
    features["return_amt_share"] = (-negative["amount"].sum() / features["monetary"]).reindex(index).fillna(0)
    country = history.groupby("CustomerID")["Country"].first().reindex(index)
    features["is_uk"] = (country == "United Kingdom").astype(float)
    features["country"] = pd.Categorical(
        country.where(country.isin(TOP_COUNTRIES), "Other"), categories=[*TOP_COUNTRIES, "Other"]
    )


def feature_columns(families: tuple[str, ...]) -> list[str]:
    return [column for family in families for column in FAMILY_COLUMNS[family]]


def design_matrix(frame: pd.DataFrame, families: tuple[str, ...]) -> pd.DataFrame:
    return frame[feature_columns(families)].replace([np.inf, -np.inf], np.nan)


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


def signed_log_design(features: pd.DataFrame) -> pd.DataFrame:
    """sign(x) * log1p(|x|) and a missing flag per numeric column; one-hot columns per category."""
    columns: dict[str, np.ndarray] = {}
    for name in features.columns:
        if isinstance(features[name].dtype, pd.CategoricalDtype):
            dummies = pd.get_dummies(features[name], prefix=name, dtype=float)
            columns.update({column: dummies[column].to_numpy() for column in dummies.columns})
            continue
        values = features[name].astype(float).replace([np.inf, -np.inf], np.nan).to_numpy()
        columns[name] = np.sign(values) * np.log1p(np.abs(values))
        columns[f"{name}_na"] = np.isnan(values).astype(float)
    return pd.DataFrame(columns, index=features.index)


class SignedLogLogistic:
    """Logistic regression (C=0.1) on `signed_log_design`, median-imputed and standardised on the fit rows."""

    def fit(self, features: pd.DataFrame, labels: np.ndarray) -> SignedLogLogistic:
        design = signed_log_design(features)
        self.columns_ = design.columns
        self.medians_ = design.median()
        design = design.fillna(self.medians_)
        self.means_, self.scales_ = design.mean(), design.std().replace(0, 1)
        self.model_ = LogisticRegression(C=0.1, max_iter=2000).fit((design - self.means_) / self.scales_, labels)
        return self

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        design = signed_log_design(features).reindex(columns=self.columns_, fill_value=0).fillna(self.medians_)
        return self.model_.predict_proba((design - self.means_) / self.scales_)[:, 1]


def fixed_lightgbm(features: pd.DataFrame, labels: np.ndarray, seed: int) -> lightgbm.LGBMClassifier:
    return lightgbm.LGBMClassifier(random_state=seed, **FIXED_LIGHTGBM).fit(features, labels)


def early_stopped_lightgbm(
    features: pd.DataFrame, labels: np.ndarray, held_out: pd.DataFrame, held_out_labels: np.ndarray
) -> lightgbm.LGBMClassifier:
    """Up to 3,000 trees, stopped after 100 rounds without a better held-out AUC."""
    model = lightgbm.LGBMClassifier(random_state=0, **EARLY_STOPPED_LIGHTGBM)
    stop = lightgbm.early_stopping(100, first_metric_only=True, verbose=False)
    return model.fit(features, labels, eval_X=held_out, eval_y=held_out_labels, eval_metric="auc", callbacks=[stop])


def scores(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    return {"auc": float(roc_auc_score(labels, predictions)), "brier": float(brier_score_loss(labels, predictions))}


# ----------------------------------------------------------------------------------------------
# The two parts
# ----------------------------------------------------------------------------------------------


def run_bound(lines: pd.DataFrame, seeds: list[int]) -> list[dict]:
    """Out-of-fold AUC and Brier per family set, model and seed, from CV inside the test snapshot."""
    snapshot = build_features(lines, TEST_AS_OF, BOUND_FAMILIES["all"])
    labels = snapshot["churned"].to_numpy()
    results = []
    for name, families in BOUND_FAMILIES.items():
        features = design_matrix(snapshot, families)
        per_seed: dict[str, list[dict[str, float]]] = {"lr": [], "lgb": [], "average": []}
        for seed in seeds:
            out_of_fold = {"lr": np.zeros(len(labels)), "lgb": np.zeros(len(labels))}
            for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(features, labels):
                fit_rows, fit_labels, test_rows = features.iloc[train], labels[train], features.iloc[test]
                out_of_fold["lgb"][test] = fixed_lightgbm(fit_rows, fit_labels, seed).predict_proba(test_rows)[:, 1]
                out_of_fold["lr"][test] = SignedLogLogistic().fit(fit_rows, fit_labels).predict_proba(test_rows)
            out_of_fold["average"] = (out_of_fold["lr"] + out_of_fold["lgb"]) / 2
            for model, predictions in out_of_fold.items():
                per_seed[model].append(scores(labels, predictions))
        for model, runs in per_seed.items():
            results.append(
                {
                    "families": name,
                    "columns": features.shape[1],
                    "model": model,
                    "auc": float(np.mean([run["auc"] for run in runs])),
                    "brier": float(np.mean([run["brier"] for run in runs])),
                    "auc_per_seed": [run["auc"] for run in runs],
                }
            )
    return results


def shift_to_rate(predictions: np.ndarray, rate: float) -> np.ndarray:
    """Add one constant to the logits so the mean prediction equals `rate`."""
    logits = logit(np.clip(predictions, 1e-6, 1 - 1e-6))
    shift = brentq(lambda offset: expit(logits + offset).mean() - rate, -10, 10)
    return expit(logits + shift)


def platt(calibration: np.ndarray, calibration_labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Unpenalised logistic regression of the labels on the logit of the held-out predictions."""

    def to_logit(values: np.ndarray) -> np.ndarray:
        return logit(np.clip(values, 1e-6, 1 - 1e-6))[:, None]

    model = LogisticRegression(C=1e6).fit(to_logit(calibration), calibration_labels)
    return model.predict_proba(to_logit(predictions))[:, 1]


def run_honest(lines: pd.DataFrame) -> dict:
    """Train on earlier snapshots, score every configuration once on the test snapshot."""
    for as_of in TRAINING_AS_OFS:
        if as_of + pd.Timedelta(days=HORIZON_DAYS) > TEST_AS_OF:
            raise ValueError(f"training snapshot {as_of.date()}'s labels end after the test as-of {TEST_AS_OF.date()}")
    families = HONEST_FAMILIES["base+product+dyn"]
    training = pd.concat([build_features(lines, as_of, families) for as_of in TRAINING_AS_OFS])
    test = build_features(lines, TEST_AS_OF, families)
    labels, test_labels = training["churned"].to_numpy(), test["churned"].to_numpy()
    is_last = (training["as_of"] == TRAINING_AS_OFS[-1]).to_numpy()
    last_customers = training.index[is_last].to_numpy()
    held_out = np.random.RandomState(0).choice(last_customers, size=len(last_customers) // 5, replace=False)
    is_held_out = training.index.isin(held_out)  # these customers leave the fit in every snapshot
    fit, calibration = ~is_held_out, is_held_out & is_last
    rows = []
    for name, families in HONEST_FAMILIES.items():
        features, test_features = design_matrix(training, families), design_matrix(test, families)
        fit_rows, fit_labels, calibration_rows = features[fit], labels[fit], features[calibration]
        raw_lr = SignedLogLogistic().fit(features, labels).predict_proba(test_features)
        raw_lgb = fixed_lightgbm(features, labels, 0).predict_proba(test_features)[:, 1]
        lr = SignedLogLogistic().fit(fit_rows, fit_labels)
        lgb = fixed_lightgbm(fit_rows, fit_labels, 0)
        stopped = early_stopped_lightgbm(fit_rows, fit_labels, calibration_rows, labels[calibration])
        held_out_and_test = {
            "lr": (lr.predict_proba(calibration_rows), lr.predict_proba(test_features)),
            "lgb_fixed": (lgb.predict_proba(calibration_rows)[:, 1], lgb.predict_proba(test_features)[:, 1]),
            "lgb_early_stopped": (
                stopped.predict_proba(calibration_rows)[:, 1],
                stopped.predict_proba(test_features)[:, 1],
            ),
        }
        held_out_and_test["average"] = tuple(
            (lr_part + lgb_part) / 2
            for lr_part, lgb_part in zip(held_out_and_test["lr"], held_out_and_test["lgb_fixed"], strict=True)
        )
        raw = {
            "lr": raw_lr,
            "lgb_fixed": raw_lgb,
            "lgb_early_stopped": held_out_and_test["lgb_early_stopped"][1],
            "average": (raw_lr + raw_lgb) / 2,
        }
        for model, (calibration_predictions, test_predictions) in held_out_and_test.items():
            calibrated = platt(calibration_predictions, labels[calibration], test_predictions)
            oracle = shift_to_rate(raw[model], test_labels.mean())
            rows.append(
                {
                    "features": name,
                    "model": model,
                    "raw": scores(test_labels, raw[model]) | {"mean": float(raw[model].mean())},
                    "platt": scores(test_labels, calibrated) | {"mean": float(calibrated.mean())},
                    "oracle_shift_brier_CHEATS": float(brier_score_loss(test_labels, oracle)),
                    "trees": int(stopped.best_iteration_) if model == "lgb_early_stopped" else None,
                }
            )
    summary = {
        "test_customers": len(test),
        "test_churn_rate": float(test_labels.mean()),
        "training_rows": len(training),
        "training_churn_rate": float(labels.mean()),
        "calibration_rows": int(calibration.sum()),
        "calibration_churn_rate": float(labels[calibration].mean()),
    }
    return {"summary": summary, "rows": rows}


# ----------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------


def bound_table(results: list[dict]) -> str:
    lines = ["| families | columns | model | AUC mean | AUC per seed | Brier mean |", "|---|---|---|---|---|---|"]
    for row in results:
        seeds = ", ".join(f"{auc:.4f}" for auc in row["auc_per_seed"])
        lines.append(
            f"| {row['families']} | {row['columns']} | {row['model']} | {row['auc']:.4f} | {seeds} | "
            f"{row['brier']:.4f} |"
        )
    return "\n".join(lines)


def honest_table(honest: dict) -> str:
    lines = [
        "| features | model | raw AUC | raw Brier | raw mean | Platt AUC | Platt Brier | Platt mean "
        "| ORACLE shift Brier (cheats) | trees |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in honest["rows"]:
        raw, calibrated = row["raw"], row["platt"]
        lines.append(
            f"| {row['features']} | {row['model']} | {raw['auc']:.4f} | {raw['brier']:.4f} | {raw['mean']:.3f} "
            f"| {calibrated['auc']:.4f} | {calibrated['brier']:.4f} | {calibrated['mean']:.3f} "
            f"| {row['oracle_shift_brier_CHEATS']:.4f} | {row['trees'] or ''} |"
        )
    return "\n".join(lines)


def write_json_atomically(payload: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        json.dump(payload, handle, indent=2)
    os.chmod(handle.name, 0o644)  # the temporary file is private (0600)
    os.replace(handle.name, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="online_retail.parquet (see DATA.md)")
    parser.add_argument("--bound", action="store_true", help="run the cheating CV bound (default: both parts)")
    parser.add_argument("--honest", action="store_true", help="run the honest protocol (default: both parts)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="CV seeds of the bound")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        sys.exit(f"Online Retail not found at {args.data}: pass --data PATH (source and md5: ../shared/data/DATA.md)")
    run_both = not (args.bound or args.honest)
    started = time.perf_counter()
    md5 = hashlib.md5(args.data.read_bytes()).hexdigest()
    if md5 != EXPECTED_MD5:
        print(f"warning: {args.data} has md5 {md5}, DATA.md's copy {EXPECTED_MD5}; figures will differ")
    payload: dict = {
        "data": str(args.data),
        "md5": md5,
        "lightgbm": lightgbm.__version__,
        "scikit_learn": sklearn.__version__,
        "pandas": pd.__version__,
    }
    with threadpool_limits(limits=1):
        lines = prepare_lines(pd.read_parquet(args.data))
        if run_both or args.bound:
            payload["seeds"] = args.seeds
            payload["bound_CHEATS_ON_TIME"] = run_bound(lines, args.seeds)
            print(
                f"\nBound (cheats on time): 5-fold stratified CV inside the {TEST_AS_OF.date()} snapshot, "
                f"seeds {args.seeds}\n"
            )
            print(bound_table(payload["bound_CHEATS_ON_TIME"]))
        if run_both or args.honest:
            payload["honest"] = run_honest(lines)
            summary = payload["honest"]["summary"]
            print(
                f"\nHonest: trained on {', '.join(str(day.date()) for day in TRAINING_AS_OFS)} "
                f"({summary['training_rows']} rows, churn {summary['training_churn_rate']:.3f}; calibration "
                f"{summary['calibration_rows']} rows, churn {summary['calibration_churn_rate']:.3f}), scored once on "
                f"{TEST_AS_OF.date()} ({summary['test_customers']} customers, churn "
                f"{summary['test_churn_rate']:.3f})\n"
            )
            print(honest_table(payload["honest"]))
    payload["seconds"] = time.perf_counter() - started
    print(f"\nTarget: AUC >= {TARGET_AUC}, Brier <= {TARGET_BRIER}. {payload['seconds']:.0f} s; wrote {args.out}")
    write_json_atomically(payload, args.out)


if __name__ == "__main__":
    main()
