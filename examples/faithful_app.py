"""A team's own Python mock of the workflow API, here simply the suite's faithful mock.

    CDF_TOKEN=example-write-token CDF_READONLY_TOKEN=example-readonly-token \
        retry-contract run --app examples.faithful_app:app --project example-project
"""

from cdf_workflows_mock import MockConfig, create_app

app = create_app(MockConfig.with_tokens("example-project", "example-write-token", "example-readonly-token"))
