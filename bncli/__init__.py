"""bncli: batch-normalize tables the way torch.nn.BatchNorm1d does, from the shell.

The library API (importing it loads numpy and pyarrow; the CLI imports lazily)::

    from bncli import fit, transform, load_stats, Params, IOOptions
    stats, summary = fit(["train.csv"], "stats.json", "train.norm.csv", params=Params(batch_size=128))
    transform(["test.csv"], load_stats("stats.json"), "test.norm.csv")
"""

__version__ = "0.1.0"

__all__ = ["fit", "transform", "load_stats", "Stats", "Params", "IOOptions", "Reporter", "__version__"]


def __getattr__(name):
    # Lazy, so that `bncli --help` does not pay for numpy and pyarrow.
    if name in ("fit", "transform", "IOOptions"):
        from . import pipeline

        return getattr(pipeline, name)
    if name in ("load_stats", "Stats", "Params"):
        from . import stats

        return getattr(stats, name)
    if name == "Reporter":
        from .report import Reporter

        return Reporter
    raise AttributeError(f"module 'bncli' has no attribute {name!r}")
