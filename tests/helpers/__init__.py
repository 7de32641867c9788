"""Shared test code: fixtures' builders, upstream-format readers and writers, subprocess helpers."""
