"""Renderers: reports in, Rich renderables or JSON-ready dicts out. Nothing is computed here."""
