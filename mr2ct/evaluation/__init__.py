"""Evaluation: metrics of synthesized volumes, tables and plots."""
