"""Load generation for edgebench: Locust users (``locustfile.py``) and a headless runner.

Public surface: :func:`loadtests.runner.run_load`, :class:`loadtests.runner.LoadResult`,
:class:`loadtests.runner.LoadError`.
"""
from loadtests.runner import LoadError, LoadResult, run_load  # noqa: F401

__all__ = ["LoadError", "LoadResult", "run_load"]
