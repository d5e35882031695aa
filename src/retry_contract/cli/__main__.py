"""`python -m retry_contract.cli`: the `retry-contract` command."""

from retry_contract.cli import main

main()
