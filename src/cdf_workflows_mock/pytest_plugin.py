"""A fake CDF for your tests: the `fake_cdf` pytest fixture (registered through the `pytest11` entry
point of the package that ships `cdf_workflows_mock`).

    def test_my_workflow(fake_cdf):
        client = fake_cdf.cognite_client()   # a CogniteClient for the fake (needs cognite-sdk)
        ...

`fake_cdf` serves a fresh mock of the workflow API on a free loopback port for one test;
`fake_cdf_session` serves one for the whole session (tests then share its state). Nothing starts
unless a test asks for one of them. Set-up, for every test through options (command line or ini
file), for one test (or a class or module) through the `fake_cdf` marker, which wins:

    pytest --fake-cdf-state tests/cdf-state.yaml --fake-cdf-error-rate 0.3 --fake-cdf-chaos-seed 7

    @pytest.mark.fake_cdf(state="cdf-state.yaml", profile="recorded", latency="0.05-0.2")
    def test_slow_cdf(fake_cdf): ...

Each setting is an option `--fake-cdf-<name>`, an ini key `fake_cdf_<name>` and a marker argument
`<name>` (with `_` for `-`): `project` (the tokens' project, default `fake-cdf`), `state` (a YAML
state file to start from, `cdf_workflows_mock.state_file`), `profile` (`classic`, the default, or
`recorded`), `latency` (delay per request: `SECONDS` or `MIN-MAX`), `error-rate` (share of requests
answered 429/503), `chaos-seed` (seed of the chaos draws, default 0).

A relative state path is relative to the directory pytest was started in (command line), the ini
file's directory (ini) or the test file's directory (marker).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cdf_workflows_mock.chaos import ChaosConfig, ChaosInjector
from cdf_workflows_mock.config import MockConfig, Profile
from cdf_workflows_mock.hosting import EmbeddedMock
from cdf_workflows_mock.state_file import InitialState, StateFileError, load_state_file

if TYPE_CHECKING:
    from cognite.client import CogniteClient

DEFAULT_PROJECT = "fake-cdf"
DEFAULT_CLIENT_NAME = "fake-cdf-tests"
# Marker argument → option name (`--fake-cdf-<name>`, ini `fake_cdf_<name with _>`).
_SETTINGS = {
    "project": "project",
    "state": "state",
    "profile": "profile",
    "latency": "latency",
    "error_rate": "error-rate",
    "chaos_seed": "chaos-seed",
}
_HELP = {
    "project": f"project of the fake CDF (default {DEFAULT_PROJECT})",
    "state": "YAML file with the fake CDF's initial workflows and executions",
    "profile": "faithful shape of the fake CDF: classic (default), recorded or proxied",
    "latency": "delay of every fake CDF answer: SECONDS or MIN-MAX",
    "error_rate": "share of requests the fake CDF answers 429/503 with Retry-After (0-1)",
    "chaos_seed": "seed of the fake CDF's latency and error draws (default 0)",
}
_STARTED_CHAOS = pytest.StashKey[list[ChaosInjector]]()
_STATE_FILES = pytest.StashKey[dict[Path, InitialState]]()


@dataclass(frozen=True, slots=True)
class FakeCdfSettings:
    """How one fake CDF is set up."""

    project: str = DEFAULT_PROJECT
    state: Path | None = None
    profile: Profile = Profile.CLASSIC
    chaos: ChaosConfig = field(default_factory=ChaosConfig)

    @classmethod
    def resolve(cls, values: Mapping[str, tuple[object, Path]]) -> FakeCdfSettings:
        """From `{marker argument: (value, directory a relative path is relative to)}`; a ValueError
        names what is wrong."""

        def value(name: str) -> Any:
            return values[name][0] if name in values else None

        unknown = sorted(set(values) - set(_SETTINGS))
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r}; known: {', '.join(_SETTINGS)}")
        state = value("state")
        state_path = None
        if state is not None:
            state_path = Path(str(state))
            if not state_path.is_absolute():
                state_path = values["state"][1] / state_path
        try:
            error_rate = None if value("error_rate") is None else float(value("error_rate"))
            seed = None if value("chaos_seed") is None else int(value("chaos_seed"))
        except (TypeError, ValueError):
            raise ValueError(
                f"error_rate must be a number and chaos_seed an integer, got {value('error_rate')!r} "
                f"and {value('chaos_seed')!r}"
            ) from None
        project = value("project")
        return cls(
            project=DEFAULT_PROJECT if project is None else str(project),
            state=state_path,
            profile=Profile.parse(str(value("profile") or Profile.CLASSIC.value)),
            chaos=ChaosConfig.from_options(value("latency"), error_rate, seed),
        )


@dataclass(frozen=True)
class FakeCdf:
    """A running fake CDF: where it is, its tokens, and a client for it.

    `write_token` may read, write and create sessions; `readonly_token` may read and create sessions.
    `execution_ids` are the ids of the state file's executions, in file order. `chaos` counts what
    chaos mode did (None when it is off).
    """

    base_url: str
    project: str
    write_token: str = field(repr=False)
    readonly_token: str = field(repr=False)
    execution_ids: tuple[str, ...] = ()
    chaos: ChaosInjector | None = field(default=None, repr=False)

    def cognite_client(
        self, *, read_only: bool = False, client_name: str = DEFAULT_CLIENT_NAME
    ) -> CogniteClient:
        """A `CogniteClient` for this fake CDF, with the write token (or the read-only one)."""
        try:
            from cognite.client import ClientConfig, CogniteClient, global_config
            from cognite.client.credentials import Token
        except ImportError as error:
            raise ImportError(
                "fake_cdf.cognite_client() needs the Cognite Python SDK: pip install cognite-sdk "
                "(the fake CDF itself does not)"
            ) from error
        # Otherwise constructing a client starts a thread that asks PyPI for the latest version.
        global_config.disable_pypi_version_check = True
        token = self.readonly_token if read_only else self.write_token
        return CogniteClient(
            ClientConfig(
                client_name=client_name,
                project=self.project,
                credentials=Token(token),
                base_url=self.base_url,
            )
        )


@contextmanager
def running_fake_cdf(settings: FakeCdfSettings, state: InitialState | None = None) -> Iterator[FakeCdf]:
    """A fake CDF served on a free loopback port while the block runs, with fresh random tokens.

    `state` (else the file `settings.state`, if any) is created in it first.
    """
    if state is None and settings.state is not None:
        state = load_state_file(settings.state)
    write_token, readonly_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    config = MockConfig.with_tokens(
        settings.project, write_token, readonly_token, profile=settings.profile, chaos=settings.chaos
    )
    with EmbeddedMock(config, state=state) as mock:
        loaded = getattr(mock.app.state, "loaded_state", None)
        yield FakeCdf(
            base_url=mock.base_url,
            project=settings.project,
            write_token=write_token,
            readonly_token=readonly_token,
            execution_ids=loaded.execution_ids if loaded is not None else (),
            chaos=mock.app.state.chaos,
        )


# --- the plugin -------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fake-cdf", "a fake CDF workflow API for tests of code that uses it (fake_cdf)")
    for name, option in _SETTINGS.items():
        group.addoption(f"--fake-cdf-{option}", dest=f"fake_cdf_{name}", default=None, help=_HELP[name])
        parser.addini(f"fake_cdf_{name}", _HELP[name], default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fake_cdf(state=None, profile=None, project=None, latency=None, error_rate=None, chaos_seed=None): "
        "how this test's fake_cdf fixture is set up (overrides the --fake-cdf-* options)",
    )
    config.stash[_STARTED_CHAOS] = []
    config.stash[_STATE_FILES] = {}
    try:
        FakeCdfSettings.resolve(_option_values(config))
    except ValueError as error:
        # A typo in an option is the user's, and found before any test runs.
        raise pytest.UsageError(f"--fake-cdf-* options: {error}") from None


def _option_values(config: pytest.Config) -> dict[str, tuple[object, Path]]:
    """The settings given on the command line, else in the ini file, with the directory each is
    relative to."""
    ini_dir = config.inipath.parent if config.inipath is not None else config.rootpath
    values: dict[str, tuple[object, Path]] = {}
    for name in _SETTINGS:
        given = config.getoption(f"fake_cdf_{name}")
        if given is not None:
            values[name] = (given, config.invocation_params.dir)
        elif ini := config.getini(f"fake_cdf_{name}"):
            values[name] = (ini, ini_dir)
    return values


def _settings(request: pytest.FixtureRequest, *, with_marker: bool) -> FakeCdfSettings:
    values = _option_values(request.config)
    marker = request.node.get_closest_marker("fake_cdf") if with_marker else None
    try:
        if marker is not None:
            if marker.args:
                raise ValueError(
                    "the fake_cdf marker takes keyword arguments only, e.g. fake_cdf(state='x.yaml')"
                )
            values.update({name: (value, request.path.parent) for name, value in marker.kwargs.items()})
        return FakeCdfSettings.resolve(values)
    except ValueError as error:
        pytest.fail(f"fake_cdf: {error}", pytrace=False)


@contextmanager
def _serve(request: pytest.FixtureRequest, settings: FakeCdfSettings) -> Iterator[FakeCdf]:
    with ExitStack() as stack:
        try:
            state = None
            if settings.state is not None:
                # Each file is read once per session, however many tests start from it.
                cache = request.config.stash[_STATE_FILES]
                state = cache.get(settings.state) or load_state_file(settings.state)
                cache[settings.state] = state
            fake = stack.enter_context(running_fake_cdf(settings, state))
        except StateFileError as error:
            pytest.fail(f"fake_cdf: {error}", pytrace=False)
        if fake.chaos is not None:
            request.config.stash[_STARTED_CHAOS].append(fake.chaos)
        yield fake


@pytest.fixture
def fake_cdf(request: pytest.FixtureRequest) -> Iterator[FakeCdf]:
    """A fresh fake CDF for this test (options and the `fake_cdf` marker set it up)."""
    with _serve(request, _settings(request, with_marker=True)) as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_cdf_session(request: pytest.FixtureRequest) -> Iterator[FakeCdf]:
    """One fake CDF for the whole session, set up by the options only (markers are per test)."""
    with _serve(request, _settings(request, with_marker=False)) as fake:
        yield fake


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say what chaos did, so a green run under chaos shows that faults were really met."""
    totals: dict[str, list[int]] = {}
    for injector in config.stash.get(_STARTED_CHAOS, []):
        counts = totals.setdefault(injector.config.describe(), [0, 0])
        counts[0] += injector.refused
        counts[1] += injector.requests
    for described, (refused, requests) in totals.items():
        terminalreporter.write_line(
            f"fake_cdf chaos ({described}): {refused} of {requests} requests answered 429/503"
        )
