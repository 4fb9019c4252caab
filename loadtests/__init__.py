"""Load generation for edgebench: open-loop Locust users (``locustfile.py``), a headless
runner, the request sample format (``samples.py``) and an independent probe (``probe.py``).

Public surface: :func:`loadtests.runner.run_load`, :class:`loadtests.runner.LoadResult`,
:class:`loadtests.runner.LoadError`; ``loadtests.samples`` for reading requests.csv.gz.
"""
from loadtests.runner import LoadError, LoadResult, run_load  # noqa: F401

__all__ = ["LoadError", "LoadResult", "run_load"]
