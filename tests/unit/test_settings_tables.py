"""The run settings are declared once (`run_settings`): what the command line, the settings file, the
pytest plugin, the runner, action.yml and the README say of them is derived from the declarations,
and a self-test fails when one of them says something else."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from retry_contract import settings
from retry_contract.cli.run import run
from retry_contract.run_settings import COMMAND_LINE, RUN_OPTION_SETTINGS, RUN_SETTINGS
from retry_contract.runner import RunOptions
from retry_contract.secrets_registry import SecretRegistry
from support.project import ROOT

SCRIPT = ROOT / "scripts" / "settings_tables.py"


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


# The script runs in a fresh interpreter (seconds): out of the fast tier.
@pytest.mark.slow
def test_the_readme_and_the_action_say_what_the_declarations_say() -> None:
    checked = _check(ROOT)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("filename", "before", "after", "region"),
    [
        ("README.md", "| Cases per fuzzing phase. |", "| Cases per phase. |", "README.md: run-options"),
        ("action.yml", "RC_RATE: ${{ inputs.rate }}", "RC_RATE: ${{ inputs.max-requests }}", "environment"),
        ("action.yml", '    default: "2000"\n', '    default: "20000"\n', "action.yml: inputs"),
    ],
)
def test_a_table_edited_by_hand_is_found(
    tmp_path: Path, filename: str, before: str, after: str, region: str
) -> None:
    for name in ("README.md", "action.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    text = (tmp_path / filename).read_text(encoding="utf-8")
    assert before in text
    (tmp_path / filename).write_text(text.replace(before, after, 1), encoding="utf-8")
    checked = _check(tmp_path)
    assert checked.returncode == 1
    assert region in checked.stderr


def test_runs_options_are_the_declared_settings_with_their_defaults() -> None:
    options = {param.name: param for param in run.params if isinstance(param, click.Option)}
    assert list(options) == [setting.python_name for setting in COMMAND_LINE]
    for setting in COMMAND_LINE:
        if setting.name in options and not setting.flag and not setting.multiple:
            assert options[setting.python_name].default == setting.default, setting.name


def test_the_declared_defaults_are_the_runners() -> None:
    # Every field a setting names exists, and a run given every setting's default is a default run.
    fields = {field.name for field in dataclasses.fields(RunOptions)}
    assert {setting.field for setting in RUN_OPTION_SETTINGS} <= fields
    defaults = {
        setting.python_name: () if setting.multiple else (False if setting.flag else setting.default)
        for setting in RUN_OPTION_SETTINGS
    }
    registry = SecretRegistry()
    derived = RunOptions.from_settings(defaults, credentials=None, readonly_token=None, secrets=registry)
    plain = RunOptions(base_url=None, project=derived.project, credentials=None, secrets=registry)
    assert derived == plain


def test_the_settings_file_takes_the_declared_keys_and_refuses_the_secrets(tmp_path: Path) -> None:
    path = tmp_path / "retry-contract.toml"
    path.write_text('format = ["json"]\nconcurrency = 2\n', encoding="utf-8")
    defaults, _ = settings.load(path)
    # Keyed by the option's Python name, as click's default map is (`--format` is `formats`).
    assert defaults == {"formats": ["json"], "concurrency": 2}
    for secret in (setting for setting in RUN_SETTINGS if setting.secret):
        path.write_text(f'{secret.name} = "x"\n', encoding="utf-8")
        with pytest.raises(settings.SettingsError, match="secrets belong in the environment"):
            settings.load(path)
