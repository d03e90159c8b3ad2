"""Evaluation: metrics and interpretation from stored predictions, figures, report, comparison."""
