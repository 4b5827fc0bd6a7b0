"""Metrics in numpy: classification, regression, multi-label, entities, retrieval, calibration, SQuAD
EM/F1, TACRED micro F1. Import no other ftcli folder."""
