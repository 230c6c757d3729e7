"""Detector definitions, the model-name registry and one DeployModule per family."""
