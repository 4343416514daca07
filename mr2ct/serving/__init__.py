"""Serving: a TF Serving-compatible REST endpoint and client."""
