"""The performance regression gate: side-by-side rounds of a change (B) and a reference
(A), budgets checked per round on B, an A/B judged over rounds, a verdict with an exit
code (0 pass, 1 regression, 2 error, 3 could not measure). docs/gate.md explains it.

Modules: params (typed parameters), figures (a round's figures
from the report), stats (the closed sequential design over rounds), verdict (budgets +
A/B), loop (rounds and looks), plan (the command), outputs, baseline (stored runs),
faults (knobs), explain (py-spy on a CPU regression), calibrate (error rates measured),
pool (unchanged-code rounds recorded: spreads, independence, gates replayed; the error rates
are simulated by tests/gate_simulate.py). budgets.yml is read by reports.budgets.
"""
