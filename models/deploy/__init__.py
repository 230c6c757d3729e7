"""Deployable (static-shape, export-ready) modules, one per family."""
