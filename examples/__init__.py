"""Example applications for `retry-contract run --app` (see the README)."""
