"""Presentation: turns model objects into text or JSON, never computes facts."""
