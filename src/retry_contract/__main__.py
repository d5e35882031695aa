"""`python -m retry_contract`: the `retry-contract` command, where its script is not on PATH."""

from retry_contract.cli import main

if __name__ == "__main__":
    main(prog_name="retry-contract")
