"""Metrics in numpy: leaves that training, evaluation and prediction share."""
