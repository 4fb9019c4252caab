"""Plumbing every edgebench package shares: atomic files, the one-line error, cgroups.

The lowest layer: it imports nothing from the rest of edgebench, and every other
package may import it.
"""
