"""edgebench: measure a Python service under an edge robot's limits."""

from pathlib import Path

# The checkout: default results/ and budgets.yml live here. Defined here, not in
# edgebench.results, so that building the command line (and `up`/`down`/`status`)
# does not import pandas and scipy through the report code: seconds on a host, over a
# minute in the cgroup v2 guest (tests/platforms/guest.py).
REPO_ROOT = Path(__file__).resolve().parent.parent
