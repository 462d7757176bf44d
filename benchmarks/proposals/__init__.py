"""Proposed hot-path diffs and the script that regenerates them from the prototypes."""
