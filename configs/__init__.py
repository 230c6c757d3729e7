"""The shipped training configs (``sdk.configs``): plain Python files read by
``sdk.config.load_config``. Installed with the package, so ``sdk quickstart`` finds
``quickstart_tiny.py`` in a wheel install as in a checkout."""
