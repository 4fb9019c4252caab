"""Capacity sweeps (issue 12): how costs grow with load and series, and where each part breaks."""
