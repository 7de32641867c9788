"""Fixtures shared by every test folder."""

from tests.helpers.tmpfs import small_tmpfs  # noqa: F401 - a small filesystem to fill up, for the full-disk tests
