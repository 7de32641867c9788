"""Fixtures shared by every test folder."""

from tests.helpers.demo import demo_repo, demo_run  # noqa: F401 - the repository `make demo` ran in, a copy per module
from tests.helpers.tmpfs import small_tmpfs  # noqa: F401 - a small filesystem to fill up, for the full-disk tests
