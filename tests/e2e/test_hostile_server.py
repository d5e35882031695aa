"""The suite against hostile servers, as a CI job runs it: the CLI in its own process, pointed at
`hostile_proxy` in front of the embedded mock, whose tokens are canaries.

Each case must end by itself (within a hard wall bound, or it is killed and fails), exit as the case
allows (1 or 2 when the server misbehaves; 0 too where the misbehaviour is harmless to the contract),
write a parseable JSON report, show no canary in any encoded form in anything it wrote (stdout, stderr,
every file under its working directory: reports, step summary, `.hypothesis/`), and stay under
`MAX_PEAK_RSS_MIB` of peak RSS (`os.wait4`: that child only). `benchmarks/hostile_server.py` runs the same
cases and prints the figures.

Flags the suite may not have yet are looked up in `run --help`: a case that needs one is skipped, naming
it; `--max-duration` is passed wherever the suite has it.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import html
import json
import os
import re
import resource
import secrets
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

import httpx
import pytest

from cdf_workflows_mock import EmbeddedMock, MockConfig
from support.hostile_proxy import (
    ECHO_CUTS,
    AfterPreflight,
    Endpoint,
    Hostility,
    Mode,
    Retries,
    Selector,
    echo_cut_body,
    echo_forms,
    echo_forms_body,
    gzip_bomb,
    hostile_proxy,
    invalid_utf8_body,
)
from support.project import CLI, PROJECT, child_environment

REQUEST_TIMEOUT_SECONDS = 10
# Bounds the cases that never let a run finish (every retry dripping, nothing answered after the
# preflight): the run must end by itself within them, and the tier stays quick.
MAX_DURATION_SECONDS = 30
CLEANUP_TIMEOUT_SECONDS = 15
MAX_PEAK_RSS_MIB = 1024
# A safety net for the machine, not the measured limit: a child that tries to hold a bomb in memory
# meets MemoryError here, long after it has crossed MAX_PEAK_RSS_MIB.
ADDRESS_SPACE_CAP_BYTES = 6 * 1024**3
# A fragment of an encoded secret at least this long is a leak (a report cut inside it leaves one).
MIN_FRAGMENT_CHARS = 12
# Files bigger than this are scanned in their first bytes only.
SCAN_LIMIT_BYTES = 64 * 1024 * 1024
FAST_WALL_SECONDS = 90.0
SLOW_WALL_SECONDS = 240.0
# After SIGTERM at the wall bound, the suite may clean up this long before it is killed.
TERM_GRACE_SECONDS = 15.0
JSON_REPORT = "retry-contract.json"
STEP_SUMMARY = "step-summary.md"


# --- canaries and the scanner -------------------------------------------------------------------


def make_canary(role: str) -> str:
    """A secret no text holds by chance, with characters that percent-encoding changes. Its fixed
    marker is in the middle, so a fragment from either end is random enough to be this canary's."""
    return f"{secrets.token_hex(8)}+cnry{role}{secrets.token_urlsafe(9)}/{secrets.token_hex(6)}~.=="


def _aligned_base64(raw: bytes, offset: int, encode: Callable[[bytes], bytes]) -> str:
    """The characters of base64(…+raw+…) that only `raw` decides, when raw starts `offset` bytes
    after a 3-byte boundary: the same in every base64 string that holds raw at that alignment."""
    text = encode(bytes(offset) + raw).decode()
    first = -(-8 * offset // 6)
    last = 8 * (offset + len(raw)) // 6
    return text[first:last]


def scan_forms(secret: str) -> dict[str, str]:
    """The forms the scanner looks for; those in lower case are matched regardless of case."""
    raw = secret.encode()
    forms = {"raw": secret}
    for offset in range(3):
        forms[f"base64@{offset}"] = _aligned_base64(raw, offset, base64.b64encode)
        forms[f"base64url@{offset}"] = _aligned_base64(raw, offset, base64.urlsafe_b64encode)
    forms["percent"] = quote(secret, safe="").lower()
    forms["json-u"] = "".join(f"\\u{ord(char):04x}" for char in secret)
    forms["hex"] = raw.hex()
    return forms


_CASELESS = frozenset({"percent", "json-u", "hex"})


def _views(data: bytes, suffix: str) -> Iterator[str]:
    """The text as written, and as a reader would see it once JSON, HTML or XML escapes are undone."""
    text = data.decode("latin-1")
    yield text
    yield text.replace("\\\\", "\\").replace("\\/", "/")
    if "&" in text:
        yield html.unescape(text)
    if suffix == ".json":
        try:
            document = json.loads(data.decode("utf-8", "replace"))
        except (ValueError, RecursionError):
            return
        yield "\n".join(_strings(document))


def _strings(document: object) -> Iterator[str]:
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


class Match(NamedTuple):
    start: int
    order: int  # of the form in `scan_forms`
    stop: int
    form: str
    whole: bool


def count_leaks(data: bytes, canaries: Mapping[str, str], suffix: str = "") -> Counter[str]:
    """Occurrences of the canaries, by 'role:form', in the view of `data` that shows the most. An
    occurrence is a stretch of text holding a form whole or a fragment from either end of it that
    encodes MIN_FRAGMENT_CHARS of the secret. Overlapping matches are one occurrence (raw and percent
    agree where the secret has nothing to escape), named after the longest whole form there, else
    after the first form of `scan_forms` that matched."""
    best: Counter[str] = Counter()
    for view in _views(data, suffix):
        lowered = view.lower()
        found: Counter[str] = Counter()
        for role, secret in canaries.items():
            matches: list[Match] = []
            for order, (name, form) in enumerate(scan_forms(secret).items()):
                haystack, needle = (lowered, form.lower()) if name in _CASELESS else (view, form)
                width = -(-len(form) * MIN_FRAGMENT_CHARS // len(secret))
                for part in {needle, needle[:width], needle[-width:]}:
                    found_at = re.finditer(re.escape(part), haystack)
                    matches += [Match(m.start(), order, m.end(), name, part == needle) for m in found_at]
            for group in _overlapping(sorted(matches)):
                named = max(group, key=lambda m: (m.whole, (m.stop - m.start) * m.whole, -m.order))
                found[f"{role}:{named.form}"] += 1
        if found.total() > best.total():
            best = found
    return best


def _overlapping(matches: list[Match]) -> Iterator[list[Match]]:
    """Matches sorted by start, in groups of overlapping ones."""
    group: list[Match] = []
    reach = -1
    for match in matches:
        if group and match.start >= reach:
            yield group
            group = []
        group.append(match)
        reach = max(reach, match.stop)
    if group:
        yield group


def scan_outputs(paths: list[Path], canaries: Mapping[str, str]) -> dict[str, Counter[str]]:
    """Leaks by file, for every file at or under `paths`."""
    leaks: dict[str, Counter[str]] = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            with path.open("rb") as stream:
                found = count_leaks(stream.read(SCAN_LIMIT_BYTES), canaries, path.suffix)
            if found:
                leaks[str(path)] = found
    return leaks


# --- the cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    hostility: Callable[[], Hostility]
    exits: frozenset[int] = frozenset({1, 2})
    args: tuple[str, ...] = ("--no-fuzz",)
    slow: bool = False
    needs: tuple[str, ...] = ()
    oauth: bool = False
    # A control case: the proxy forwards everything, so nothing is expected to strike.
    control: bool = False
    # The run must end within this many seconds (a property of the case, below the hard wall bound).
    ends_within: float | None = None
    why: str = ""

    @property
    def wall_seconds(self) -> float:
        return SLOW_WALL_SECONDS if self.slow else FAST_WALL_SECONDS


def _mode(mode: Mode, select: Callable[[], Selector] = Retries, **kwargs: int) -> Callable[[], Hostility]:
    """Selectors count what they saw, so each run gets a fresh Hostility."""
    return lambda: Hostility(mode, select(), **kwargs)


# A single bad answer the suite recovers from (by re-sending it) may leave nothing to blame.
ANY = frozenset({0, 1, 2})
CASES = (
    Case("faithful", _mode(Mode.ECHO_FORMS, lambda: Endpoint("/never")), frozenset({0}), control=True,
         why="control: everything forwarded"),
    Case("echo-forms", _mode(Mode.ECHO_FORMS), why="400 envelope echoing the token in 11 encodings"),
    *(
        Case(f"echo-cut-{cut}", _mode(Mode.ECHO_CUT, cut_at=cut), slow=cut != 300,
             why=f"a report cut at {cut} lands inside the token")
        for cut in ECHO_CUTS
    ),
    Case("echo-preflight", _mode(Mode.ECHO_FORMS, lambda: Endpoint("/sessions", "POST")), frozenset({2}),
         why="POST /sessions refused, echoing the token: the run cannot start"),
    Case("echo-forms-fuzzed", _mode(Mode.ECHO_FORMS), args=("--max-examples", "5"), slow=True,
         why="the echo met by Schemathesis too"),
    Case("header-echo", _mode(Mode.HEADER_ECHO), slow=True, why="token in response headers"),
    Case("header-malformed", _mode(Mode.HEADER_MALFORMED), slow=True,
         why="a header line without a colon, holding the token"),
    Case("invalid-utf8", _mode(Mode.INVALID_UTF8), why="the server acts, answers non-UTF-8 bytes"),
    Case("deep-json", _mode(Mode.DEEP_JSON), why="the server acts, answers JSON nested 5000 deep"),
    Case("invalid-utf8-after-preflight", _mode(Mode.INVALID_UTF8, AfterPreflight), slow=True,
         why="every answer after the preflight is non-UTF-8: set-up cannot proceed"),
    Case("redirect-credentials", _mode(Mode.REDIRECT_CREDENTIALS), slow=True, why="307 to http://user:TOKEN@…"),
    Case("lost-answer", _mode(Mode.LOST_ANSWER, lambda: Retries(limit=6, every=2)), frozenset({0, 2}),
         why="the server acts, the answer is lost: not the server's fault"),
    Case("drip-one", _mode(Mode.DRIP, lambda: Retries(limit=1)), ANY,
         ends_within=60.0, why="one answer at 1 byte/s, --timeout 10"),
    Case("drip-all", _mode(Mode.DRIP), slow=True, needs=("--max-duration",),
         why="every retry answered at 1 byte/s"),
    Case("stall-head-one", _mode(Mode.STALL_HEAD, lambda: Retries(limit=1)), ANY, slow=True,
         ends_within=60.0, why="no head ever comes, once"),
    Case("stall-body-one", _mode(Mode.STALL_BODY, lambda: Retries(limit=1)), ANY, slow=True,
         ends_within=60.0, why="a head, then no body, once"),
    Case("stall-after-preflight", _mode(Mode.STALL_HEAD, AfterPreflight), frozenset({2}), slow=True,
         needs=("--max-duration",), why="nothing answered after the preflight"),
    Case("gzip-bomb", _mode(Mode.GZIP_BOMB), slow=True, why="gzip decoding to 1.5 GiB, per retry"),
    Case("huge-body", _mode(Mode.HUGE_BODY), slow=True, why="a 2 GiB plain body, per retry"),
    Case("huge-body-capped", _mode(Mode.HUGE_BODY, body_bytes=64 * 1024**2),
         args=("--no-fuzz", "--max-response-mib", "4"), slow=True, needs=("--max-response-mib",),
         why="a 64 MiB body over a 4 MiB cap"),
    *(
        Case(mode.value, _mode(mode, lambda: Endpoint("/never")), frozenset({2}), oauth=True,
             slow=mode is not Mode.TOKEN_ERROR_ECHO, why=f"the client-credentials path: {mode.value}")
        for mode in (Mode.TOKEN_NOT_JSON, Mode.TOKEN_HTML, Mode.TOKEN_ERROR_ECHO)
    ),
)  # fmt: skip


@functools.cache
def supported_flags() -> frozenset[str]:
    help_text = subprocess.run(
        [*CLI, "run", "--help"],
        env=_child_environment({}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return frozenset(re.findall(r"--[a-z][a-z-]+", help_text))


def _child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    return child_environment({"COLUMNS": "100", **extra})


@dataclass
class Outcome:
    case: str
    exit_code: int | None
    ended_by_itself: bool
    wall_seconds: float
    peak_rss_mib: float
    leaks: dict[str, Counter[str]]
    reports: list[str]
    json_report_ok: bool
    applied: int
    requests: int
    stderr_tail: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def secrets_found(self) -> int:
        return sum(found.total() for found in self.leaks.values())

    def leak_summary(self) -> str:
        merged: Counter[str] = Counter()
        for found in self.leaks.values():
            merged.update(found)
        where = ", ".join(sorted({Path(p).name for p in self.leaks}))
        return f"{dict(merged)} in {where}" if merged else "none"


def _limit_address_space(pid: int) -> None:
    # Set from outside, just after the start: a preexec_fn is unsafe when cases run on threads, and
    # the cap is only a safety net for the machine (the 1 GiB assertion is separate).
    with contextlib.suppress(ProcessLookupError):
        resource.prlimit(pid, resource.RLIMIT_AS, (ADDRESS_SPACE_CAP_BYTES, ADDRESS_SPACE_CAP_BYTES))


def _wait(pid: int, deadline: float) -> tuple[int, resource.struct_rusage] | None:
    """The child's wait status and rusage, or None if it is still running at `deadline`."""
    while True:
        waited, status, usage = os.wait4(pid, os.WNOHANG)
        if waited:
            return status, usage
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def run_case(case: Case, directory: Path) -> Outcome:
    """Run the CLI against a fresh mock behind the case's proxy, in `directory`."""
    flags = supported_flags()
    workdir, reports = directory / "work", directory / "work" / "reports"
    workdir.mkdir(parents=True)
    write, readonly, client_secret = make_canary("w"), make_canary("r"), make_canary("s")
    canaries = {"write": write, "readonly": readonly}
    environment = {"CDF_READONLY_TOKEN": readonly, "GITHUB_STEP_SUMMARY": str(workdir / STEP_SUMMARY)}
    args = _drop_unsupported(case.args, flags)
    if "--max-duration" in flags:
        args += ["--max-duration", str(MAX_DURATION_SECONDS)]
    if "--cleanup-timeout" in flags:
        args += ["--cleanup-timeout", str(CLEANUP_TIMEOUT_SECONDS)]
    with (
        EmbeddedMock(MockConfig.with_tokens(PROJECT, write, readonly)) as mock,
        hostile_proxy(mock.base_url, case.hostility()) as (url, proxy),
    ):
        if case.oauth:
            canaries["client-secret"] = client_secret
            environment |= {
                "CDF_CLIENT_ID": "retry-contract-selftest",
                "CDF_CLIENT_SECRET": client_secret,
                "CDF_TOKEN_URL": f"{url}/oauth2/token",
            }
        else:
            environment["CDF_TOKEN"] = write
        command = [
            *CLI, "run", "--base-url", url, "--project", PROJECT,
            "--report-dir", str(reports), "--timeout", str(REQUEST_TIMEOUT_SECONDS), *args,
        ]  # fmt: skip
        stdout, stderr = directory / "stdout.txt", directory / "stderr.txt"
        started = time.monotonic()
        with stdout.open("wb") as out, stderr.open("wb") as err:
            child = subprocess.Popen(
                command,
                cwd=workdir,
                env=_child_environment(environment),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
            _limit_address_space(child.pid)
            waited = _wait(child.pid, started + case.wall_seconds)
            ended_by_itself = waited is not None
            if waited is None:
                os.killpg(child.pid, signal.SIGTERM)
                waited = _wait(child.pid, time.monotonic() + TERM_GRACE_SECONDS)
            if waited is None:
                os.killpg(child.pid, signal.SIGKILL)
                waited = _wait(child.pid, time.monotonic() + TERM_GRACE_SECONDS)
            assert waited is not None, f"{case.name}: the child outlived SIGKILL"
            wall = time.monotonic() - started
            status, usage = waited
            child.returncode = os.waitstatus_to_exitcode(status)
        applied, requests = proxy.applied + proxy.token_requests, proxy.requests
    leaks = scan_outputs([stdout, stderr, workdir], canaries)
    report_names = sorted(p.name for p in reports.iterdir()) if reports.is_dir() else []
    return Outcome(
        case=case.name,
        exit_code=child.returncode,
        ended_by_itself=ended_by_itself,
        wall_seconds=wall,
        peak_rss_mib=usage.ru_maxrss / 1024,
        leaks=leaks,
        reports=report_names,
        json_report_ok=_parses(reports / JSON_REPORT),
        applied=applied,
        requests=requests,
        stderr_tail=_scrubbed(stderr.read_bytes()[-600:].decode("utf-8", "replace"), canaries),
    )


def _drop_unsupported(args: tuple[str, ...], flags: frozenset[str]) -> list[str]:
    """The case's arguments without a flag the suite lacks (and its value)."""
    kept: list[str] = []
    for index, arg in enumerate(args):
        unsupported = arg.startswith("--") and arg not in flags
        value_of_unsupported = index > 0 and not arg.startswith("--") and args[index - 1] not in flags
        if not (unsupported or value_of_unsupported):
            kept.append(arg)
    return kept


def _parses(path: Path) -> bool:
    try:
        json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return True


def _scrubbed(text: str, canaries: Mapping[str, str]) -> str:
    """The test's own messages go to CI logs too."""
    for role, secret in canaries.items():
        for form in scan_forms(secret).values():
            # Whatever word holds a fragment goes, so no rest of the secret is left beside it.
            for fragment in (form[:MIN_FRAGMENT_CHARS], form[-MIN_FRAGMENT_CHARS:]):
                text = re.sub(rf"\S*{re.escape(fragment)}\S*", f"<{role}>", text, flags=re.I)
    return text


# --- the scanner and the proxy, checked without the suite ----------------------------------------


def test_the_scanner_finds_every_form_the_proxy_echoes() -> None:
    secret = make_canary("w")
    for name, form in echo_forms(secret).items():
        assert count_leaks(f"<{form}>".encode(), {"w": secret}).total() >= 1, name
    body = echo_forms_body(secret)
    assert count_leaks(body, {"w": secret}).total() >= len(echo_forms(secret))
    # The \u form is JSON: once parsed, the body holds the secret raw.
    assert secret in json.loads(body)["error"]["message"]


@pytest.mark.parametrize("cut", ECHO_CUTS)
def test_a_report_cut_inside_the_echo_still_shows_a_fragment(cut: int) -> None:
    secret = make_canary("w")
    body, _ = echo_cut_body(secret, cut)
    start = body.index(secret.encode())
    assert start < cut < start + len(secret)
    assert count_leaks(body[:cut], {"w": secret}) == {"w:raw": 1}


def test_the_scanner_sees_through_report_escapes() -> None:
    secret = make_canary("w")
    as_json = json.dumps({"body": "\\u" + "\\u".join(f"{ord(c):04x}" for c in secret)}).encode()
    as_html = html.escape(f"<td>{secret}</td>").replace("+", "&#43;").encode()
    assert count_leaks(as_json, {"w": secret}, ".json")["w:json-u"] == 1
    assert count_leaks(as_html, {"w": secret})["w:raw"] >= 1
    assert count_leaks(invalid_utf8_body(400, secret), {"w": secret})["w:raw"] == 1


def test_the_tests_own_messages_hold_no_canary() -> None:
    secret = make_canary("w")
    said = _scrubbed(f"answered 400: {echo_forms_body(secret).decode()} {secret[:20]}", {"w": secret})
    assert not count_leaks(said.encode(), {"w": secret})


def test_the_scanner_finds_nothing_in_text_without_the_canary() -> None:
    secret, other = make_canary("w"), make_canary("w")
    assert not count_leaks(echo_forms_body(other) + b"[REDACTED] cnryw", {"w": secret})


def test_the_gzip_bomb_is_a_valid_gzip_stream_of_zeros() -> None:
    import gzip

    bomb = gzip_bomb(8)
    stream = b"".join(bomb.chunks())
    assert len(stream) == bomb.length
    assert gzip.decompress(stream) == bytes(8 * 1024 * 1024)


@contextlib.contextmanager
def _proxied(hostility: Hostility) -> Iterator[tuple[httpx.Client, str, str]]:
    """A client of the proxy in front of a fresh mock, the write token, and the retry URL."""
    token = make_canary("w")
    with (
        EmbeddedMock(MockConfig.with_tokens(PROJECT, token, make_canary("r"))) as mock,
        hostile_proxy(mock.base_url, hostility) as (url, _),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=5) as client,
    ):
        yield client, token, f"/api/v1/projects/{PROJECT}/workflows/executions/x/retry"


def test_the_proxy_forwards_what_it_does_not_select() -> None:
    hostility = Hostility(Mode.ECHO_FORMS, Retries(limit=1))
    with _proxied(hostility) as (client, token, retry):
        listed = client.get(f"/api/v1/projects/{PROJECT}/workflows")
        echoed, forwarded = client.post(retry, json={}), client.post(retry, json={})
    assert listed.status_code == 200
    assert echoed.status_code == 400 and token in echoed.json()["error"]["message"]
    assert forwarded.status_code != 400 or token not in forwarded.text


def test_the_proxy_misbehaves_as_each_mode_says() -> None:
    with _proxied(Hostility(Mode.HEADER_ECHO)) as (client, token, retry):
        assert token in client.post(retry, json={}).headers["x-echo-authorization"]
    broken = pytest.raises(httpx.RemoteProtocolError)
    with _proxied(Hostility(Mode.HEADER_MALFORMED)) as (client, _, retry), broken:
        client.post(retry, json={})
    with _proxied(Hostility(Mode.REDIRECT_CREDENTIALS)) as (client, token, retry):
        redirect = client.post(retry, json={})
        assert redirect.status_code == 307 and quote(token, safe="") in redirect.headers["location"]
    for stalling in (Mode.STALL_HEAD, Mode.STALL_BODY):
        with _proxied(Hostility(stalling)) as (client, _, retry), pytest.raises(httpx.ReadTimeout):
            client.post(retry, json={}, timeout=0.5)
    broken = pytest.raises(httpx.RemoteProtocolError)
    with _proxied(Hostility(Mode.LOST_ANSWER)) as (client, _, retry), broken:
        client.post(retry, json={})
    with _proxied(Hostility(Mode.INVALID_UTF8)) as (client, _, retry), pytest.raises(UnicodeDecodeError):
        client.post(retry, json={}).content.decode()
    with _proxied(Hostility(Mode.DEEP_JSON)) as (client, _, retry), pytest.raises(RecursionError):
        json.loads(client.post(retry, json={}).content)
    with _proxied(Hostility(Mode.HUGE_BODY, body_bytes=8 * 1024 * 1024)) as (client, _, retry):
        assert len(client.post(retry, json={}).content) == 8 * 1024 * 1024
    with _proxied(Hostility(Mode.GZIP_BOMB)) as (client, _, retry):
        with client.stream("POST", retry, json={}) as bomb:
            assert bomb.headers["content-encoding"] == "gzip"
            assert int(bomb.headers["content-length"]) == gzip_bomb().length
            first = next(bomb.iter_bytes())
        assert first and not first.strip(b"\0")


# --- the suite against each case ----------------------------------------------------------------


# Cases run side by side: most of a case's time is the suite waiting on a drip, a stall or its own
# deadlines, not CPU. Each has its own mock, proxy and child process, measured on its own (wait4).
CASES_AT_ONCE = 4


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Outcome]]]:
    """Every selected case of this module, started at once on first use; each test waits for its own."""
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if item.originalname == "test_the_suite_against_a_hostile_server" and hasattr(item, "callspec")
    ]
    runnable = [c for c in selected if all(flag in supported_flags() for flag in c.needs)]
    with ThreadPoolExecutor(CASES_AT_ONCE, thread_name_prefix="hostile-case") as pool:
        yield {c.name: pool.submit(run_case, c, tmp_path_factory.mktemp(c.name)) for c in runnable}


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else []) for c in CASES]
)
def test_the_suite_against_a_hostile_server(case: Case, outcomes: dict[str, Future[Outcome]]) -> None:
    missing = [flag for flag in case.needs if flag not in supported_flags()]
    if missing:
        pytest.skip(f"the suite has no {', '.join(missing)} yet (run --help); this case needs it")
    outcome = outcomes[case.name].result()
    said = f"{case.name} ({case.why}); stderr ends: {outcome.stderr_tail!r}"
    assert outcome.requests >= 1, f"nothing reached the proxy: {said}"
    assert outcome.applied >= 1 or case.control, f"the hostile mode never struck: {said}"
    assert outcome.ended_by_itself, f"killed at the wall bound of {case.wall_seconds:.0f} s: {said}"
    if case.ends_within is not None:
        assert outcome.wall_seconds < case.ends_within, f"took {outcome.wall_seconds:.0f} s: {said}"
    assert outcome.exit_code in case.exits, f"exit {outcome.exit_code}, not in {set(case.exits)}: {said}"
    assert outcome.secrets_found == 0, f"canary found: {outcome.leak_summary()}; {said}"
    assert outcome.peak_rss_mib < MAX_PEAK_RSS_MIB, f"peak RSS {outcome.peak_rss_mib:.0f} MiB: {said}"
    assert outcome.json_report_ok, f"no parseable {JSON_REPORT} (reports: {outcome.reports}): {said}"
