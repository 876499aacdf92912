"""Synthetic sequence tasks (data generators with exact validity checks)."""
