"""Objectives: what a row's label is, the loss, the metrics and what a prediction looks like."""
