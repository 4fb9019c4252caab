"""One scenario as the figures see it: its steady window cut once, its samples selected
once, the role of each component taken from scenario.json.

Every estimator of the figure catalogue (reports/figures.py) is a function of a
:class:`ScenarioView`; nothing else cuts the window.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from loadtests.samples import steady
from reports import stats as S
from reports.load import Scenario

SCRAPE_ENDPOINT = "/metrics"
SENSOR_ENDPOINT = "/sensor"



class ScenarioView:
    """A loaded scenario, its steady window and the selections every figure shares.

    ``missing`` collects, in plain words, what could not be measured."""

    def __init__(self, sc: Scenario, run_status: str | None = None):
        self.sc = sc
        self.meta = sc.meta
        self.run_status = run_status
        self.missing: list[str] = []
        self.start, self.end = self._window()

    # ------------------------------------------------------------ the steady window
    def _window(self) -> tuple[float | None, float | None]:
        """[steady_start, steady_end) from scenario.json; without it the whole run (said so);
        an interrupted scenario's window ends at its last sample."""
        sc, missing = self.sc, self.missing
        start, end = S.finite_or_none(self.meta.get("steady_start")), S.finite_or_none(self.meta.get("steady_end"))
        req, res = sc.requests, sc.resources
        first, last = [], []
        if req is not None and len(req):
            first.append(float(req["intended"].min()))
            last.append(float(req["intended"].max()))
        if res is not None and len(res):
            first.append(float(res["t"].min()))
            last.append(float(res["t"].max()))
        if start is None or end is None:
            missing.append("steady window (steady_start/steady_end) not recorded: the whole run is used, "
                           "warm-up included")
            start = start if start is not None else (min(first) if first else None)
            end = end if end is not None else (float(np.nextafter(max(last), np.inf)) if last else None)
        interrupted = (self.meta.get("status") not in (None, "complete")) or (self.run_status == "interrupted")
        if interrupted and last and end is not None and max(last) < end:
            new_end = float(np.nextafter(max(last), np.inf))
            missing.append(f"steady window cut short at {new_end - (start or new_end):.0f} s "
                           f"(scenario status '{self.meta.get('status') or self.run_status}')")
            end = new_end
        return start, end

    @property
    def duration_s(self) -> float | None:
        return (self.end - self.start) if (self.start is not None and self.end is not None) else None

    # ------------------------------------------------------------ requests
    @cached_property
    def requests(self) -> pd.DataFrame | None:
        """Requests whose *intended* time is in the steady window (sent or not)."""
        req = self.sc.requests
        if req is None:
            return None
        if self.start is None or self.end is None:
            return req
        return steady(req, self.start, self.end)

    @cached_property
    def sent(self) -> pd.DataFrame | None:
        r = self.requests
        return None if r is None else r[r["sent"] == 1]

    def endpoint(self, name: str, sent_only: bool = True) -> pd.DataFrame | None:
        r = self.sent if sent_only else self.requests
        return None if r is None else r[r["name"] == name]

    # ------------------------------------------------------------ resources
    @cached_property
    def components(self) -> dict:
        res = self.sc.resources
        if res is None or len(res) == 0:
            return {}
        return {str(c): g for c, g in res.groupby("component", sort=True)}

    @cached_property
    def roles(self) -> dict:
        return {c: self.sc.role(c) for c in self.components}

    def component_of(self, role: str) -> str | None:
        return next((c for c, r in self.roles.items() if r == role), None)

    @property
    def service(self) -> str | None:
        return self.component_of("service")

    @property
    def collector(self) -> str | None:
        return self.component_of("collector")

    def samples(self, component: str) -> pd.DataFrame | None:
        """All of a component's samples (the whole scenario)."""
        return self.components.get(component)

    def steady_samples(self, component: str) -> pd.DataFrame | None:
        g = self.components.get(component)
        return None if g is None else S.steady_samples(g, self.start, self.end)
