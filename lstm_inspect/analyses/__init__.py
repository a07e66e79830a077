"""Analyses: each takes a loaded model plus plain options and returns a frozen report of raw numbers."""
