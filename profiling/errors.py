"""The profilers' one error: its own module, so the modules that raise it need not import
the package that imports them."""


class ProfilerError(RuntimeError):
    """A profiler could not run or attach. The message is one line naming cause and fix;
    callers log it and carry on with the run."""
