"""Mean and 95 % confidence interval over the replicate seeds of each grid point of a sweep.

The interval is Student's t: ``mean ± t(0.975, n - 1) · s / √n`` over the ``n`` seeds that
ran without error (``s``: the sample standard deviation); one seed gives no interval (NaN).
The t quantiles are tabulated for up to 30 degrees of freedom and the normal 1.96 beyond
(within 2 % of t there).
"""

import math

import numpy as np
import pandas as pd

# t(0.975, dof) for dof = 1..30 (two-sided 95 %)
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
Z975 = 1.96
# the metrics a sweep's printed summary shows by default
HEADLINE = ("host_rss_peak_bytes", "returned_bytes", "reported_bytes", "vmexits",
            "guest_cpu_overhead_s", "workload_runtime_s", "oom_kills", "lost_writes")


def t975(dof):
    """The two-sided 95 % quantile of Student's t with ``dof`` degrees of freedom."""
    if dof < 1:
        return math.nan
    return T975[dof - 1] if dof <= len(T975) else Z975


def ci95(values):
    """``(mean, half-width)`` of the 95 % t interval of ``values`` (NaNs left out)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan, math.nan
    mean = float(x.mean())
    if len(x) == 1:
        return mean, math.nan
    return mean, t975(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))


def seed_summary(df, keys=None, metrics=HEADLINE):
    """One row per grid point: the grid keys, ``seeds`` (runs without error), then for each
    metric ``<metric>`` (the mean over the seeds) and ``<metric>_ci95`` (the half-width).

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`fphlib.sweep` (one row per run).
    keys : list of str, optional
        Columns naming a grid point (default ``df.attrs["keys"]``, else the columns before
        ``seed``).
    metrics : sequence of str
        Metrics to summarise (default :data:`HEADLINE`), columns of ``df``.
    """
    if keys is None:
        keys = df.attrs.get("keys") or list(df.columns[:list(df.columns).index("seed")])
    keys = list(keys)
    missing = [m for m in [*keys, *metrics] if m not in df.columns]
    if missing:
        raise ValueError(f"metrics: {missing!r} not in the sweep frame")
    ok = df[df["error"].isna()] if "error" in df.columns else df
    rows = []
    for point, group in ok.groupby(keys, sort=False, dropna=False) if keys else [((), ok)]:
        point = point if isinstance(point, tuple) else (point,)
        row = dict(zip(keys, point, strict=True), seeds=len(group))
        for m in metrics:
            row[m], row[f"{m}_ci95"] = ci95(group[m])
        rows.append(row)
    columns = [*keys, "seeds", *(c for m in metrics for c in (m, f"{m}_ci95"))]
    return pd.DataFrame(rows, columns=columns)
