"""Figures and tables as self-contained HTML pieces: PNG images embedded as base64 data URIs.

The report must open offline, so nothing is linked: every plot is rendered with matplotlib's Agg
backend into PNG bytes and inlined; tables become plain HTML (pandas `to_html`, escaped).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

__all__ = ["EmbeddedImage", "embed_figure", "figure_png", "table_html"]


@dataclass(frozen=True)
class EmbeddedImage:
    """One image of the report: a stable id (for tests and links), its caption and PNG as data URI."""

    image_id: str
    caption: str
    data_uri: str


def figure_png(figure: Figure, dpi: int = 90) -> bytes:
    """PNG bytes of a figure; the figure is closed (pyplot-managed SHAP figures would leak otherwise)."""
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(figure)
    return buffer.getvalue()


def embed_figure(figure: Figure, image_id: str, caption: str, dpi: int = 90) -> EmbeddedImage:
    """A figure as an inline `data:image/png;base64,...` image with its id and caption."""
    encoded = base64.b64encode(figure_png(figure, dpi=dpi)).decode("ascii")
    return EmbeddedImage(image_id=image_id, caption=caption, data_uri=f"data:image/png;base64,{encoded}")


def table_html(frame: pd.DataFrame, table_id: str, float_format: str = "{:,.3f}") -> str:
    """An escaped HTML table with integer counts comma-grouped and floats formatted."""
    shown = frame.copy()
    for column in shown.columns:
        if pd.api.types.is_integer_dtype(shown[column]) and not pd.api.types.is_bool_dtype(shown[column]):
            shown[column] = shown[column].map("{:,}".format)
        elif pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(lambda value: "" if pd.isna(value) else float_format.format(value))
    return shown.to_html(index=False, escape=True, border=0, table_id=table_id, classes="data", na_rep="")
