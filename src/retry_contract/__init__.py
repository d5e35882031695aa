"""retry-contract: a contract-testing suite for CDF's Retry workflow execution endpoint.

See ARCHITECTURE.md for the flow of a run and which module may use which.
"""

from retry_contract.requirements import CATALOGUE, Level, Requirement
from retry_contract.verdict import ExitCode, Outcome

__all__ = ["CATALOGUE", "ExitCode", "Level", "Outcome", "Requirement"]
