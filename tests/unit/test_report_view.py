"""One report view per run, read by every format: the same facts under the same names everywhere,
each request and response shown once with every requirement it failed, and the command that
replays a failure printed with it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from retry_contract import reports
from retry_contract.exchange import Exchange
from retry_contract.reports import FILE_FORMATS, console, html, json_report, markdown, model, reporter
from retry_contract.results import MOCK_PROJECT, RunOptions, RunResult
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.verdict import Ledger, Observation

PASSWORD = "pa55word-in-the-url-9321"
TARGET = "http://127.0.0.1:9"
RETRY_URL = f"{TARGET}/api/v1/projects/{MOCK_PROJECT}/workflows/executions/x/retry"


def _exchange(status: int, body: bytes) -> Exchange:
    return Exchange(
        method="POST",
        url=RETRY_URL,
        request_headers={"content-type": "application/json"},
        request_body=b"{}",
        status=status,
        response_body=body,
        origin="made by hand",
    )


def _result(base_url: str | None = f"http://user:{PASSWORD}@127.0.0.1:9") -> RunResult:
    """Two failures on one request and response (two judges, two requirements), one on another."""
    secrets = SecretRegistry()
    secrets.add(PASSWORD)
    ledger = Ledger()
    shared, other = _exchange(200, b'{"createdTime": "yesterday"}'), _exchange(200, b"{}")
    ledger.record(
        [
            Observation("RESP-TIME", False, "createdTime is not an integer", shared, judge="openapi"),
            Observation("RESP-STATUS", False, "status is missing", shared, judge="success"),
            Observation("STATE-RETRYABLE", False, "retried a RUNNING execution", other, judge="http"),
        ]
    )
    options = RunOptions(base_url=base_url, project=MOCK_PROJECT, credentials=None)
    return RunResult(options=options, target=TARGET, ledger=ledger, secrets=secrets, requests_sent=3)


def test_failures_on_the_same_request_and_response_are_one_card() -> None:
    view = model.build(_result(), Path("reports/retry-contract.json"))
    assert [card.requirements for card in view.cards] == [["STATE-RETRYABLE"], ["RESP-STATUS", "RESP-TIME"]]
    # Numbered in the report's order (the catalogue's); a card replays its first failure.
    numbers = {f["requirement"]: f["number"] for row in view.rows for f in row["failures"]}
    assert [card.number for card in view.cards] == [numbers["STATE-RETRYABLE"], numbers["RESP-STATUS"]]
    assert view.card_of(numbers["RESP-TIME"]) is view.cards[1]


def test_the_replay_command_names_the_json_report_and_the_target_never_a_secret() -> None:
    report = Path("out dir/retry-contract.json")
    assert (
        model.replay_command(report, 3) == "retry-contract replay 'out dir/retry-contract.json' --failure 3"
    )
    with_target = model.replay_command(report, 3, f"https://me:{PASSWORD}@example.cognitedata.com:8443/x")
    assert with_target.endswith("--failure 3 --base-url https://example.cognitedata.com:8443/x")
    view = model.build(_result(), report)
    assert [card.replay for card in view.cards] == [
        model.replay_command(report, card.number, TARGET) for card in view.cards
    ]
    # Without the JSON report there is no record to replay: no command.
    assert all(card.replay is None for card in model.build(_result()).cards)


def test_a_run_on_the_embedded_mock_replays_without_a_base_url() -> None:
    view = model.build(_result(base_url=None), Path("retry-contract.json"))
    assert view.cards and all(card.replay and "--base-url" not in card.replay for card in view.cards)


def test_every_format_reads_the_view_it_is_given(tmp_path: Path) -> None:
    """A fact changed in the view alone shows in every format: none of them goes back to the run."""
    view = replace(model.build(_result()), verdict="a verdict only the view holds", requests_sent=123457)
    for name in FILE_FORMATS:
        text = reporter(name).write(view, tmp_path).read_text(encoding="utf-8")
        assert "a verdict only the view holds" in text, name
        if name != "html":  # the page shows the count among the run's facts, split by markup
            assert "123457" in text, name
    shown = Console(file=io.StringIO(), width=200)
    console.render(view, shown, [])
    assert "a verdict only the view holds" in shown.file.getvalue()  # type: ignore[attr-defined]
    assert "123457 requests" in shown.file.getvalue()  # type: ignore[attr-defined]


def test_publishing_builds_the_view_once_for_every_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[model.ReportView] = []
    build = model.build

    def counted(result: RunResult, replay_report: Path | None = None) -> model.ReportView:
        built.append(build(result, replay_report))
        return built[-1]

    monkeypatch.setattr(model, "build", counted)
    output = Console(file=io.StringIO(), width=200)
    assert reports.publish(_result(), tmp_path, reports.FORMATS, output, environ={})
    assert len(built) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(reporter(n).FILENAME for n in FILE_FORMATS)


def test_the_duplicate_card_and_the_replay_command_in_console_html_and_markdown(tmp_path: Path) -> None:
    result = _result()
    report = tmp_path / json_report.FILENAME
    view = model.build(result, report)
    shared = view.cards[1]
    replay = model.replay_command(report, shared.number, TARGET)
    state_replay = model.replay_command(report, view.cards[0].number, TARGET)

    page = html.render(view)
    # Two cards, two reproductions: the second failure on the shared exchange points at its card.
    assert page.count('<pre class="curl">') == 2
    assert f'href="#failure-{shared.number}"' in page
    assert page.count('<pre class="replay">') == 2 and state_replay in page.replace("&#39;", "'")
    assert "RESP-STATUS, RESP-TIME" in page

    summary = markdown.build(view)
    assert "### First failure: #" in summary
    assert summary.count("curl -i -X POST") == 1
    assert state_replay in summary

    output = Console(file=io.StringIO(), width=200)
    console.render(view, output, [])
    text = output.file.getvalue()  # type: ignore[attr-defined]
    assert state_replay in text
    # Every other failure, with its own command: the shared card once, under its first number.
    assert text.count(replay) == 1 and summary.count(replay) == 1
    assert f"failure #{shared.number} (RESP-STATUS, RESP-TIME): {replay}" in text
    for shown in (page, summary, text):
        assert PASSWORD not in shown and "user:" not in shown

    # The shared card first: it lists both requirements once, with one reproduction.
    first_shared = replace(view, cards=(shared, view.cards[0]))
    summary = markdown.build(first_shared)
    assert "RESP-STATUS (MUST), RESP-TIME (MUST)" in summary
    assert summary.count("curl -i -X POST") == 1 and replay in summary
    output = Console(file=io.StringIO(), width=200)
    console.render(first_shared, output, [])
    text = output.file.getvalue()  # type: ignore[attr-defined]
    assert "RESP-STATUS: status is missing" in text and "RESP-TIME: createdTime is not an integer" in text
    assert text.count("curl -i -X POST") == 1 and replay in text


def test_the_json_report_keeps_its_keys(tmp_path: Path) -> None:
    data = json.loads(json_report.write(model.build(_result()), tmp_path).read_text(encoding="utf-8"))
    assert data["stopped_early"] is None and data["infrastructure_faults"] == []
    assert data["requests_sent"] == 3


def test_no_report_module_imports_the_runner() -> None:
    modules = [
        f"retry_contract.reports.{name}" for name in ("model", "console", "progress", *FILE_FORMATS.values())
    ]
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint('retry_contract.runner' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert completed.stdout.strip() == "False"
