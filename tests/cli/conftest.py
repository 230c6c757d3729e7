"""Fixtures of the CLI tests: the bright-box model_dir and scenes (``support.fixtures``)."""

from support.fixtures import make_model_dir, scene  # noqa: F401  (fixtures)
