"""Load generation for edgebench: open-loop Locust users (``locustfile.py``), a headless
runner, the request sample format (``samples.py``) and an independent probe (``probe.py``).

Public surface: :func:`loadtests.runner.run_load`, :class:`loadtests.runner.LoadResult`,
:class:`loadtests.spec.LoadSpec` and :func:`loadtests.spec.check_load` (the one check of a
load's parameters), :class:`loadtests.spec.LoadError`; ``loadtests.samples`` for reading
requests.csv.gz.
"""
from loadtests.spec import LoadError, LoadSpec, check_load  # noqa: F401

__all__ = ["LoadError", "LoadResult", "LoadSpec", "check_load", "run_load"]


def __getattr__(name):
    """The runner (pandas, psutil) is imported when used: checking parameters stays light."""
    if name in ("LoadResult", "run_load"):
        from loadtests import runner
        return getattr(runner, name)
    raise AttributeError(f"module 'loadtests' has no attribute {name!r}")
