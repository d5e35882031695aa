"""The `fake_cdf` pytest fixture as a client team uses it: the README's example, run in a fresh pytest
project (the plugin found through its entry point), with and without chaos; its options and marker;
and that nothing starts unless a test asks for it."""

from __future__ import annotations

import re
import sys

import pytest

from cdf_workflows_mock.pytest_plugin import FakeCdf
from support.project import EXAMPLE_STATE, readme_block

# Chosen so that chaos refuses some of the example's requests (the run's summary shows how many).
CHAOS_SEED = 7


@pytest.fixture
def client_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A client team's project: the README's example test, and the example state file beside it."""
    pytester.makepyfile(test_nightly_ingest=readme_block("fake-cdf-example"))
    (pytester.path / "cdf-state.yaml").write_text(EXAMPLE_STATE.read_text(encoding="utf-8"), encoding="utf-8")
    return pytester


THREADS = """
import threading

def mocks():
    return [thread for thread in threading.enumerate() if thread.name == "embedded mock"]

def test_without_the_fixture():
    assert mocks() == []

def test_with_the_fixture(fake_cdf):
    assert len(mocks()) == 1

def test_without_it_again():
    assert mocks() == []
"""


# A fresh pytest process (tens of seconds): out of the fast tier.
@pytest.mark.slow
def test_the_readme_example_passes_against_the_fake(client_project: pytest.Pytester) -> None:
    # In a fresh interpreter, as a client team runs it: both plugins found through their entry points.
    # Beside it, a check that nothing is served unless a test asks for the fixture.
    client_project.makepyfile(test_threads=THREADS)
    result = client_project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    # No chaos, no chaos line.
    assert "fake_cdf chaos" not in result.stdout.str()


def test_the_readme_example_passes_through_chaos_on_the_sdks_retries(client_project: pytest.Pytester) -> None:
    result = client_project.runpytest_inprocess(
        "-p", "no:cacheprovider", "--fake-cdf-error-rate=0.3", f"--fake-cdf-chaos-seed={CHAOS_SEED}"
    )
    result.assert_outcomes(passed=2)
    summary = re.search(
        r"fake_cdf chaos \(429/503 on 30% of requests, seed 7\): (\d+) of (\d+) requests answered 429/503",
        result.stdout.str(),
    )
    assert summary is not None, result.stdout.str()
    refused, requests = int(summary[1]), int(summary[2])
    # Faults were really met, and the SDK re-sent each refused request until it got through.
    assert refused >= 2 and requests > refused


def test_settings_come_from_options_and_the_marker_wins(pytester: pytest.Pytester) -> None:
    (pytester.path / "state.yaml").write_text(EXAMPLE_STATE.read_text(encoding="utf-8"), encoding="utf-8")
    pytester.makepyfile(
        test_fake_cdf_options="""
        import pytest

        def test_options(fake_cdf):
            assert fake_cdf.project == "from-options"
            assert fake_cdf.base_url.startswith("http://127.0.0.1:")
            assert len(fake_cdf.execution_ids) == 5  # --fake-cdf-state, relative to where pytest started
            shown = repr(fake_cdf)
            assert fake_cdf.write_token not in shown and fake_cdf.readonly_token not in shown
            assert fake_cdf.write_token != fake_cdf.readonly_token

        @pytest.mark.fake_cdf(project="from-marker", state=None, profile="recorded")
        def test_marker(fake_cdf):
            assert fake_cdf.project == "from-marker" and fake_cdf.execution_ids == ()

        shared = []

        def test_session_fixture(fake_cdf_session):
            assert fake_cdf_session.project == "from-options"
            shared.append(fake_cdf_session)

        def test_session_fixture_is_shared(fake_cdf_session):
            assert shared == [fake_cdf_session] and shared[0] is fake_cdf_session
        """
    )
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--fake-cdf-project=from-options", "--fake-cdf-state=state.yaml"
    )
    result.assert_outcomes(passed=4)


def test_the_read_only_client_may_read_but_not_write(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_tokens="""
        import pytest
        from cognite.client.data_classes import WorkflowUpsert
        from cognite.client.exceptions import CogniteAPIError

        def test_read_only(fake_cdf):
            fake_cdf.cognite_client().workflows.upsert(WorkflowUpsert(external_id="wf"))
            reader = fake_cdf.cognite_client(read_only=True, client_name="reader")
            with pytest.raises(CogniteAPIError) as caught:
                reader.workflows.upsert(WorkflowUpsert(external_id="other"))
            assert caught.value.code == 403
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("test_file", "expected"),
    [
        (
            "import pytest\n@pytest.mark.fake_cdf(colour='blue')\ndef test_x(fake_cdf): pass\n",
            "*fake_cdf: unknown setting 'colour'; known: project, state, profile, latency, error_rate, *",
        ),
        (
            "import pytest\n@pytest.mark.fake_cdf(state='missing.yaml')\ndef test_x(fake_cdf): pass\n",
            "*fake_cdf: *missing.yaml: cannot read the state file*",
        ),
        (
            "import pytest\n@pytest.mark.fake_cdf(error_rate=2)\ndef test_x(fake_cdf): pass\n",
            "*fake_cdf: chaos error rate must be between 0 and 1, got 2*",
        ),
        (
            "import pytest\n@pytest.mark.fake_cdf(profile='modern')\ndef test_x(fake_cdf): pass\n",
            "*fake_cdf: unknown mock profile 'modern'*",
        ),
    ],
)
def test_a_bad_setting_fails_the_test_with_one_clear_line(
    pytester: pytest.Pytester, test_file: str, expected: str
) -> None:
    pytester.makepyfile(test_bad=test_file)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([expected])
    assert "Traceback" not in result.stdout.str()


def test_a_bad_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--fake-cdf-latency=fast")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--fake-cdf-* options: latency 'fast' is neither SECONDS nor MIN-MAX*"])


def test_both_plugins_are_registered_side_by_side(pytester: pytest.Pytester) -> None:
    help_text = pytester.runpytest_inprocess("--help").stdout.str()
    for option in (
        "--retry-contract-url",
        "--fake-cdf-state",
        "--fake-cdf-error-rate",
        "--fake-cdf-chaos-seed",
    ):
        assert option in help_text
    pytester.runpytest_inprocess("--markers").stdout.fnmatch_lines(["@pytest.mark.fake_cdf(*"])


def test_without_the_sdk_the_client_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCdf("http://127.0.0.1:9", "p", "w", "r")
    # A None entry makes the import fail, as when cognite-sdk is not installed.
    monkeypatch.setitem(sys.modules, "cognite.client", None)
    with pytest.raises(ImportError, match="pip install cognite-sdk"):
        fake.cognite_client()
