"""End-to-end tests in the repository `make demo` ran in (marked `demo`; see tests/helpers/demo.py)."""
