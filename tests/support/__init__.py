"""What the self-tests share and that is not a fixture: helpers, hostile servers, the repository's paths.

Test modules import from here, never from one another or from a conftest (`tests/` is on pytest's
`pythonpath`, so this package imports as `support`).
"""
