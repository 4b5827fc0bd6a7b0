"""Metrics in numpy: classification, regression, multi-label, entities, retrieval, calibration.
Import no other ftcli folder."""
