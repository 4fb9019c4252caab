"""The one definition of a load sample (a row of ``requests.csv.gz``) and the pure
functions every reader uses: reading, the steady window, latency from the intended
start, per-endpoint counts.

One row per *intended* request, whether it was sent or not:

==============  =======  ==============================================================
column          dtype    meaning
==============  =======  ==============================================================
``intended``    float64  epoch s the schedule meant to send the request at
``start``       float64  epoch s it was actually sent (NaN if never sent)
``name``        str      endpoint (``/metrics``, ``/sensor``)
``latency_ms``  float64  service time: completion − actual start (NaN if never sent)
``ok``          int64    1 = a response with status < 400
``bytes``       int64    response body length
``status_code`` int64    HTTP status, 0 = no response (never sent, timeout, refused)
``sent``        int64    1 = sent; 0 = the schedule could not send it (skipped scrape,
                         in-flight cap reached)
==============  =======  ==============================================================

Files written before the open-loop load (no ``intended``/``sent``) read as
``intended = start`` and ``sent = 1``: for them the two latencies coincide.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from plumbing.errors import EdgebenchError

SAMPLE_COLUMNS = ("intended", "start", "name", "latency_ms", "ok", "bytes", "status_code", "sent")
SAMPLE_DTYPES = {"intended": "float64", "start": "float64", "name": "object", "latency_ms": "float64",
                 "ok": "int64", "bytes": "int64", "status_code": "int64", "sent": "int64"}
COUNT_KEYS = ("intended", "sent", "completed", "ok")


class SampleFormatError(EdgebenchError):
    """A samples file that cannot be read as one (one line: which file, what is wrong)."""


def empty_samples() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in SAMPLE_DTYPES.items()})


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Columns in SAMPLE_COLUMNS order with their dtypes; older files (no intended/sent)
    read as intended = start, sent = 1; ``ok``/``bytes``/``status_code`` default to 1/0/0."""
    df = df.copy()
    for c in ("intended", "start", "latency_ms", "ok", "bytes", "status_code", "sent"):
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    if "start" not in df and "intended" in df:
        df["start"] = df["intended"]
    if "intended" not in df:
        df["intended"] = df["start"]
    if "sent" not in df:
        df["sent"] = 1
    df["sent"] = df["sent"].fillna(0)
    if "ok" not in df:
        df["ok"] = 1
    df["name"] = df["name"].astype(str) if "name" in df else "all"
    for c, default in (("ok", 0), ("bytes", 0), ("status_code", 0)):
        df[c] = df[c].fillna(default) if c in df else default
    return df[list(SAMPLE_COLUMNS)].astype(SAMPLE_DTYPES)


def read_samples(path: str | os.PathLike) -> pd.DataFrame:
    """Read a requests.csv.gz (or an uncompressed requests.csv), sorted by intended time.

    Raises SampleFormatError for a missing, unreadable or column-less file."""
    path = os.fspath(path)
    if not os.path.exists(path) and path.endswith(".gz") and os.path.exists(path[:-3]):
        path = path[:-3]  # an uncompressed requests.csv (older runs)
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise SampleFormatError(f"samples file {path} not found: run the load first (make bench)") from None
    except pd.errors.EmptyDataError:
        return empty_samples()
    except (OSError, ValueError, EOFError) as e:
        raise SampleFormatError(f"samples file {path} is unreadable ({type(e).__name__}: {e}): "
                                "re-run the load that wrote it") from None
    if "start" not in df and "intended" not in df or "latency_ms" not in df:
        raise SampleFormatError(f"samples file {path} lacks the start/latency_ms columns: "
                                "it is not a requests.csv.gz written by loadtests")
    return normalise(df).sort_values("intended", kind="mergesort").reset_index(drop=True)


def steady(df: pd.DataFrame, start: float, end: float) -> pd.DataFrame:
    """The requests *intended* in [start, end): a request the stall delayed past the end
    of the window still belongs to it, and one the schedule skipped is still counted."""
    return df[(df["intended"] >= start) & (df["intended"] < end)]


def latency_from_intended_ms(df: pd.DataFrame) -> pd.Series:
    """What a client or collector experiences: (start − intended)·1000 + service time.

    NaN where the request was never sent (those are counted, see :func:`counts`)."""
    return (df["start"] - df["intended"]) * 1000.0 + df["latency_ms"]


def counts(df: pd.DataFrame) -> dict:
    """{endpoint: {intended, sent, completed, ok}}: completed = sent and answered
    (any status; an ok row counts as answered where an old file lacks the status code);
    a scrape intended but not ok is a gap in the collector's data."""
    out = {}
    for name, g in df.groupby("name", sort=True):
        sent = g["sent"] == 1
        answered = (g["status_code"].fillna(0) > 0) | (g["ok"] == 1)
        out[str(name)] = {"intended": int(len(g)), "sent": int(sent.sum()),
                          "completed": int((sent & answered).sum()),
                          "ok": int((sent & (g["ok"] == 1)).sum())}
    return out


def percentile_ms(values: pd.Series, q: float) -> float | None:
    """The q-th percentile (0–100) of the finite values, None if there are none."""
    v = values.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(np.percentile(v, q)) if len(v) else None
