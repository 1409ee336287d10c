"""Helpers for the slow-thinking reproduction notebooks: one module per concern."""
