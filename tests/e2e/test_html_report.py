"""The HTML report: one self-contained page, in the order a person reads it, that hides no failure,
leaks no secret and lets no server answer run as markup; and what was exercised, as the ledger counted
it. The browser test opens a failing run's page in headless Chromium."""

from __future__ import annotations

import html as html_escaping
import json
import shutil
import struct
import subprocess
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from retry_contract.exchange import Exchange, Expectation
from retry_contract.fuzzing import FuzzStats
from retry_contract.reports import exercised, html, json_report
from retry_contract.reports.model import coverage_text, requirement_rows, verdict_text
from retry_contract.requirements import CATALOGUE
from retry_contract.runner import MOCK_PROJECT, RunOptions, RunResult, run
from retry_contract.secrets_registry import REPLACEMENT, SecretRegistry
from retry_contract.verdict import Ledger, Observation

TOKEN = "tok&en-<7c41e9b2d0>"
# Characters HTML escapes and JSON keeps as they are: redacting after escaping would miss it.
NONCE = "n0nce<&>'-5a9f3e1b"
HOSTILE_BODY = b'{"echo": "</pre><script>alert(\\"owned\\")</script><img src=x onerror=alert(1)>"}'
EXECUTION_ID = "7d9c5a4e-1f2b-4c3d-8e9f-0a1b2c3d4e5f"
TARGET = "http://127.0.0.1:9"
RETRY_URL = f"{TARGET}/api/v1/projects/{MOCK_PROJECT}/workflows/executions/{EXECUTION_ID}/retry"
# Elements that have no end tag in HTML.
VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
# Elements that fetch or run something: a self-contained, script-free page has none.
FETCHING = frozenset({"script", "link", "img", "iframe", "object", "embed", "audio", "video", "source"})


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""


class Page(HTMLParser):
    """The page as elements with their text, and every nesting error met on the way."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.errors: list[str] = []
        self.open: list[Element] = []

    @classmethod
    def of(cls, text: str) -> Page:
        page = cls()
        page.feed(text)
        page.close()
        if page.open:
            page.errors.append(f"never closed: {[e.tag for e in page.open]}")
        return page

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._separate()
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.elements.append(element)
        if tag not in VOID:
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1].tag != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1].tag if self.open else 'nothing'}")
            return
        self.open.pop()
        self._separate()

    def _separate(self) -> None:
        # Cells and paragraphs read apart in their ancestors' text, as a browser shows them.
        for element in self.open:
            element.text += " "

    def handle_data(self, data: str) -> None:
        for element in self.open:
            element.text += data

    def with_id(self, element_id: str) -> Element:
        return next(e for e in self.elements if e.attrs.get("id") == element_id)

    def with_class(self, tag: str, css_class: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag and css_class in e.attrs.get("class", "").split()]


def assert_self_contained_and_well_formed(text: str) -> Page:
    page = Page.of(text)
    assert not page.errors
    assert text.startswith("<!DOCTYPE html>")
    assert not [e.tag for e in page.elements if e.tag in FETCHING]
    for element in page.elements:
        # Links go to places on the page; nothing names a resource elsewhere.
        assert "src" not in element.attrs, element
        assert element.attrs.get("href", "#").startswith("#"), element
        assert not any("://" in value for name, value in element.attrs.items()), element
    styles = " ".join(e.text for e in page.elements if e.tag == "style")
    assert "url(" not in styles and "@import" not in styles
    ids = [e.attrs["id"] for e in page.elements if "id" in e.attrs]
    assert len(ids) == len(set(ids))
    for link in (e for e in page.elements if e.tag == "a"):
        assert link.attrs["href"][1:] in ids, f"{link.attrs['href']} leads nowhere"
    return page


def _hostile_result() -> RunResult:
    """A run that failed STATE-RETRYABLE on one exchange: the token in its Authorization header, the
    nonce in its body, both echoed in an answer that carries markup, and both in its messages."""
    secrets = SecretRegistry()
    secrets.add(TOKEN)
    secrets.add(NONCE)
    exchange = Exchange(
        method="POST",
        url=RETRY_URL,
        request_headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
        request_body=json.dumps({"authentication": {"nonce": NONCE}}).encode(),
        status=200,
        response_headers={"content-type": "application/json", "x-echo": f"{TOKEN} {NONCE}"},
        response_body=HOSTILE_BODY[:-2] + f' {TOKEN} {NONCE}"}}'.encode(),
        origin="scenario: STATE-RETRYABLE retry of a RUNNING execution",
        expectation=Expectation(
            "STATE-RETRYABLE", frozenset({400, 409}), "execution not in a retryable state"
        ),
        execution_id=EXECUTION_ID,
    )
    ledger = Ledger()
    ledger.count_judged(exchange)
    ledger.record(
        [
            Observation(
                "STATE-RETRYABLE", False, f"retried a RUNNING execution with {NONCE}", exchange, "check"
            ),
            Observation("ROBUST", True, "", exchange, "check"),
        ]
    )
    ledger.notes.append(f"the server echoed the token {TOKEN}")
    return RunResult(
        options=RunOptions(base_url=TARGET, project=MOCK_PROJECT, credentials=None),
        target=TARGET,
        ledger=ledger,
        secrets=secrets,
        cleanup_problems=[f"could not delete a workflow (nonce {NONCE})"],
    )


def test_the_page_is_self_contained_and_well_formed() -> None:
    assert_self_contained_and_well_formed(html.render(_hostile_result()))


def test_a_hostile_answer_is_shown_as_text_not_run_as_markup() -> None:
    text = html.render(_hostile_result())
    page = assert_self_contained_and_well_formed(text)
    assert "<script>" not in text and "&lt;script&gt;" in text
    (response,) = page.with_class("pre", "response")
    assert '</pre><script>alert(\\"owned\\")</script><img src=x onerror=alert(1)>' in response.text


def test_no_secret_in_the_page_in_any_spelling(tmp_path: Path) -> None:
    result = _hostile_result()
    text = html.write(result, tmp_path).read_text(encoding="utf-8")
    for secret in (TOKEN, NONCE):
        for spelling in (secret, html_escaping.escape(secret), html_escaping.escape(secret, quote=False)):
            assert spelling not in text
    # Where they were, the placeholders are: the request, the answer, the messages.
    page = Page.of(text)
    (request,) = page.with_class("pre", "request")
    assert f"Bearer {REPLACEMENT}" in request.text and f'"nonce": "{REPLACEMENT}"' in request.text
    (response,) = page.with_class("pre", "response")
    assert f"x-echo: {REPLACEMENT} {REPLACEMENT}" in response.text
    assert f"retried a RUNNING execution with {REPLACEMENT}" in page.with_id("failures").text
    assert f"the server echoed the token {REPLACEMENT}" in page.with_id("run").text


def test_the_ledger_counts_statuses_per_requirement_and_forms_of_judged_exchanges() -> None:
    def exchange(status: int | None, form: str) -> Exchange:
        return Exchange("POST", RETRY_URL, {}, None, status, request_form=form)

    first, second = Ledger(), Ledger()
    refused, accepted, dropped = exchange(400, "plain"), exchange(200, "sdk"), exchange(None, "plain")
    for ledger, judged in ((first, [refused, accepted]), (second, [dropped])):
        for one in judged:
            ledger.count_judged(one)
            # Two judgements of one requirement on one exchange: its status is counted once.
            ledger.record(
                [
                    Observation("ROBUST", True, "", one, "a"),
                    Observation("ROBUST", True, "", one, "b"),
                    Observation("BODY-SHAPE", one.status != 200, "", one, "a"),
                ]
            )
    second.record([Observation("NONCE-REUSE", True, "", None, "scenario")])
    first.merge(second)
    assert first.statuses == Counter({400: 1, 200: 1, None: 1})
    assert first.request_forms == Counter({"plain": 2, "sdk": 1})
    assert first.results["ROBUST"].statuses == Counter({400: 1, 200: 1, None: 1})
    assert first.results["ROBUST"].judged == 6
    assert first.results["NONCE-REUSE"].statuses == Counter()


def test_what_was_exercised_in_the_json_and_the_page(tmp_path: Path) -> None:
    result = _hostile_result()
    for status, form in ((404, "sdk"), (404, "sdk"), (None, "chunked"), (503, "plain")):
        result.ledger.count_judged(Exchange("POST", RETRY_URL, {}, None, status, request_form=form))
    result.fuzz = FuzzStats(cases=7, positive=3, negative=4)
    result.fixture_shapes_retried = Counter({"empty metadata, empty input": 2, "no metadata field": 1})
    figures = exercised.build(result)
    assert figures["responses_by_status"] == {"200": 1, "404": 2, "503": 1, "no response": 1}
    assert figures["statuses_by_requirement"]["STATE-RETRYABLE"] == {"200": 1}
    assert list(figures["statuses_by_requirement"]) == [r.id for r in CATALOGUE]
    assert figures["request_forms"] == {"chunked": 1, "plain": 2, "sdk": 2}
    assert figures["successful_retries_by_fixture_shape"] == {
        "empty metadata, empty input": 2,
        "no metadata field": 1,
    }
    assert figures["fuzz_cases"] == {"positive": 3, "negative": 4, "all": 7}
    report = json.loads(json_report.write(result, tmp_path).read_text())
    assert report["exercised"] == figures

    page = Page.of(html.render(result))
    bars = [e for e in page.elements if e.tag == "rect"]
    assert [bar.text.strip() for bar in bars] == ["200: 1", "404: 2", "503: 1", "no response: 1"]
    widths = [int(bar.attrs["width"]) for bar in bars]
    assert widths[1] == html.CHART_BAR_WIDTH and widths[0] == widths[2] == widths[3] < widths[1]
    assert [bar.attrs["class"] for bar in bars] == ["bar-success", "bar-refusal", "bar-error", "bar-error"]
    forms = page.with_id("request-forms").text.split()
    assert forms[forms.index("chunked") + 1] == "1" and forms[forms.index("sdk") + 1] == "2"
    exercised_text = " ".join(page.with_id("exercised").text.split())
    assert "7 cases, 3 positive (valid requests) and 4 negative" in exercised_text
    assert "empty metadata, empty input 2" in exercised_text


# -- a failing run, end to end ------------------------------------------------------------------


@pytest.fixture(scope="module")
def failing_run() -> RunResult:
    """The embedded mock retries RUNNING executions: STATE-RETRYABLE fails, SEM-CONCURRENT warns."""
    return run(
        RunOptions(
            base_url=None,
            project=MOCK_PROJECT,
            credentials=None,
            mock_defects=frozenset({"retry-running"}),
            max_examples=5,
        )
    )


@pytest.mark.slow
def test_a_failing_run_reads_verdict_first_then_matrix_failures_exercised_and_facts(
    failing_run: RunResult, tmp_path: Path
) -> None:
    text = html.write(failing_run, tmp_path).read_text(encoding="utf-8")
    page = assert_self_contained_and_well_formed(text)
    sections = [e.attrs["id"] for e in page.elements if e.tag == "section"]
    assert sections == ["verdict", "requirements", "failures", "exercised", "run"]
    verdict = page.with_id("verdict")
    assert verdict.attrs["class"] == "verdict tone-fail"
    assert verdict_text(failing_run) in verdict.text and coverage_text(failing_run) in verdict.text
    assert "exit code 1" in verdict.text
    rows = [e for e in page.elements if e.tag == "tr" and e.attrs.get("id", "").startswith("requirement-")]
    assert [row.attrs["id"].removeprefix("requirement-") for row in rows] == [r.id for r in CATALOGUE]
    outcomes = {row.attrs["id"].removeprefix("requirement-"): row.attrs["data-outcome"] for row in rows}
    assert outcomes["STATE-RETRYABLE"] == "failed" and outcomes["SEM-CONCURRENT"] == "warning"
    assert outcomes["RESP-200"] == "passed"
    failing = page.with_id(html.anchor("STATE-RETRYABLE"))
    assert "200" in failing.text and "400 or 409 (STATE-RETRYABLE" in " ".join(failing.text.split())
    # Every failure the model shows is on the page, with its reproduction as the model gives it.
    curls = [e.text for e in page.with_class("pre", "curl")]
    shown = [f["reproduce"] for row in requirement_rows(failing_run) for f in row["failures"]]
    assert curls == shown and curls
    assert str(failing_run.options.seed) in failing.text
    facts = page.with_id("run").text
    assert failing_run.spec_sha256 in facts and "scenarios and fuzzing" in facts
    assert f"schemathesis{failing_run.tool_versions['schemathesis']}" in "".join(facts.split())


@pytest.mark.slow
def test_a_failing_run_counts_what_it_exercised(failing_run: RunResult) -> None:
    fuzz = failing_run.fuzz
    assert fuzz.positive > 0 and fuzz.negative > 0 and fuzz.positive + fuzz.negative == fuzz.cases
    by_requirement = exercised.build(failing_run)["statuses_by_requirement"]
    # The defect answers 200 where STATE-RETRYABLE wants 400 or 409: the page shows it was judged on both.
    assert {"200", "409"} <= set(by_requirement["STATE-RETRYABLE"])
    assert set(by_requirement["AUTH-401"]) == {"401"}
    judged = failing_run.ledger.results
    assert all(sum(judged[r].statuses.values()) <= judged[r].judged for r in by_requirement)


# -- in a browser ---------------------------------------------------------------------------------


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def headless_chromium(binary: str, profile: Path, *arguments: str) -> str:
    completed = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", *arguments],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return completed.stdout


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.slow
def test_a_failing_run_report_in_headless_chromium(failing_run: RunResult, tmp_path: Path) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary (chromium or chromium-browser) on PATH: apt-get install chromium")
    page_path = html.write(failing_run, tmp_path)
    dom = Page.of(headless_chromium(binary, tmp_path / "profile", "--dump-dom", page_path.as_uri()))
    assert verdict_text(failing_run) in dom.with_id("verdict").text
    row = dom.with_id("requirement-STATE-RETRYABLE")
    assert row.attrs["data-outcome"] == "failed" and "failed" in row.text
    first_failure = next(f for r in requirement_rows(failing_run) for f in r["failures"])
    assert first_failure["reproduce"] in [e.text for e in dom.with_class("pre", "curl")]

    screenshot = tmp_path / "report.png"
    headless_chromium(
        binary,
        tmp_path / "profile",
        f"--screenshot={screenshot}",
        "--window-size=1280,1600",
        page_path.as_uri(),
    )
    assert png_size(screenshot) == (1280, 1600)
