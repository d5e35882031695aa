#!/usr/bin/env python3
"""Regenerate what README.md and action.yml say about the run settings from their declarations
(`retry_contract.run_settings.RUN_SETTINGS`), never by hand.

    .venv/bin/python scripts/settings_tables.py           # rewrite the regions in place
    .venv/bin/python scripts/settings_tables.py --check   # exit 1, naming the regions, if one differs

Each region lies between a `settings:begin NAME` and a `settings:end NAME` comment (`<!-- ... -->` in
Markdown, `# ...` in YAML); what is outside the regions is written by hand. tests/unit/test_settings_tables.py
runs `--check`, so a setting added or changed without this script fails the self-tests.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from retry_contract.run_settings import COMMAND_LINE, RUN_SETTINGS, Setting

ROOT = Path(__file__).resolve().parent.parent


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _option_cell(setting: Setting) -> str:
    names = f"`{setting.short}`, `{setting.option}`" if setting.short else f"`{setting.option}`"
    if setting.flag:
        return names
    return f"{names} `{setting.metavar or ('NAME' if setting.choices else 'TEXT')}`"


def run_options(root: Path) -> str:
    """README: the options of `retry-contract run`."""
    rows = ["| option | default | in `retry-contract.toml` | meaning |", "|---|---|---|---|"]
    for setting in COMMAND_LINE:
        default = f"`{setting.shown_default}`" if setting.shown_default else ""
        in_file = f"`{setting.name}`" if setting.in_file else ""
        rows.append(f"| {_option_cell(setting)} | {default} | {in_file} | {_cell(setting.help)} |")
    return "\n".join(rows)


def credentials(root: Path) -> str:
    """README: the credentials, from the environment only."""
    rows = ["| variable | in `retry-contract.toml` | meaning |", "|---|---|---|"]
    for setting in RUN_SETTINGS:
        if setting.env is None:
            continue
        where = "never (a secret)" if setting.secret else f"`[credentials]` `{setting.name}`"
        rows.append(f"| `{setting.env}` | {where} | {_cell(setting.help)} |")
    return "\n".join(rows)


def action_table(root: Path) -> str:
    """README: every input of action.yml, the run settings' from their declarations and the action's
    own (the artifact's name, the Python) as action.yml has them."""
    rows = ["| input | default | meaning |", "|---|---|---|"]
    declared = {_input_name(setting): setting for setting in _action_settings()}
    inputs = yaml.safe_load((root / "action.yml").read_text(encoding="utf-8"))["inputs"]
    for name, spec in inputs.items():
        setting = declared.get(name)
        default = (
            "required" if spec.get("required") else (f"`{spec['default']}`" if spec.get("default") else "")
        )
        meaning = _action_help(setting) if setting is not None else str(spec["description"])
        rows.append(f"| `{name}` | {default} | {_cell(meaning)} |")
    return "\n".join(rows)


def _action_settings() -> list[Setting]:
    return [setting for setting in RUN_SETTINGS if setting.action is not None]


def _action_help(setting: Setting) -> str:
    assert setting.action is not None
    return setting.action.help or setting.help


def _input_name(setting: Setting) -> str:
    assert setting.action is not None
    return setting.action.name or setting.name


def _variable(setting: Setting) -> str:
    """The environment variable the action's step passes the input in."""
    return setting.env or "RC_" + setting.name.upper().replace("-", "_")


def action_inputs(root: Path) -> str:
    """action.yml: the inputs that are run settings."""
    lines: list[str] = []
    for setting in _action_settings():
        assert setting.action is not None
        description = _action_help(setting) + (" Pass a secret." if setting.secret else "")
        if setting.flag:
            description += ' "true" or "false".'
        elif setting.multiple:
            among = f", among {' '.join(setting.choices())}" if setting.choices is not None else ""
            description += f" Space-separated{among}."
        elif setting.on_command_line and not setting.action.required:
            description += " Empty: the command's default."
        # JSON strings are YAML strings, quoted whatever they hold.
        lines.append(f"  {_input_name(setting)}:")
        lines.append(f"    description: {json.dumps(description)}")
        lines.append(f"    required: {'true' if setting.action.required else 'false'}")
        if not setting.action.required:
            lines.append(f"    default: {json.dumps(setting.action.default)}")
    return "\n".join(lines)


def action_environment(root: Path) -> str:
    """action.yml: the run step's environment, one variable per input."""
    return "\n".join(
        f"        {_variable(setting)}: ${{{{ inputs.{_input_name(setting)} }}}}"
        for setting in _action_settings()
    )


def action_arguments(root: Path) -> str:
    """action.yml: the run step's script, the inputs as options and credentials."""
    secrets = " ".join(_variable(s) for s in _action_settings() if s.secret)
    given = " ".join(_variable(s) for s in _action_settings() if s.env is not None)
    lines = [
        "        # Secrets passed as plain strings rather than from secrets are masked in the log too.",
        f"        for name in {secrets}; do",
        '          if [ -n "${!name}" ]; then echo "::add-mask::${!name}"; fi',
        "        done",
        f"        for name in {given}; do",
        '          if [ -z "${!name}" ]; then unset "$name"; fi',
        "        done",
        "        args=(run)",
    ]
    for setting in _action_settings():
        if not setting.on_command_line:
            continue
        variable, option = f'"${_variable(setting)}"', setting.option
        assert setting.action is not None
        if setting.flag:
            lines.append(f"        flag {_input_name(setting)} {variable} {option}")
        elif setting.multiple:
            lines.append(f"        read -r -a values <<< {variable}")
            lines.append(f'        for value in "${{values[@]}}"; do args+=({option} "$value"); done')
        elif setting.action.required:
            lines.append(f"        args+=({option} {variable})")
        else:
            lines.append(f"        if [ -n {variable} ]; then args+=({option} {variable}); fi")
    return "\n".join(lines)


# File → (comment that opens a marker, that closes it) and its regions.
REGIONS: dict[str, tuple[tuple[str, str], dict[str, Callable[[Path], str]]]] = {
    "README.md": (
        ("<!-- ", " -->"),
        {"run-options": run_options, "credentials": credentials, "action-inputs": action_table},
    ),
    "action.yml": (
        ("# ", ""),
        {"inputs": action_inputs, "environment": action_environment, "arguments": action_arguments},
    ),
}


def regenerate(
    text: str, markers: tuple[str, str], regions: dict[str, Callable[[Path], str]], root: Path
) -> tuple[str, list[str]]:
    """`text` with every region rewritten, and the names of the regions that changed."""
    opening, closing = markers
    changed: list[str] = []
    for name, render in regions.items():
        pattern = re.compile(
            rf"(^[ \t]*{re.escape(opening)}settings:begin {name}{re.escape(closing)}\n)(.*?)"
            rf"(^[ \t]*{re.escape(opening)}settings:end {name}{re.escape(closing)}$)",
            re.MULTILINE | re.DOTALL,
        )
        match = pattern.search(text)
        if match is None:
            raise SystemExit(
                f"settings_tables: no region {name!r} (its settings:begin/end markers are missing)"
            )
        body = render(root) + "\n"
        if match.group(2) != body:
            changed.append(name)
            text = text[: match.start(2)] + body + text[match.end(2) :]
    return text, changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a region differs")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose files are regenerated")
    args = parser.parse_args()
    stale: list[str] = []
    for filename, (markers, regions) in REGIONS.items():
        path = args.root / filename
        text, changed = regenerate(path.read_text(encoding="utf-8"), markers, regions, args.root)
        stale += [f"{filename}: {name}" for name in changed]
        if changed and not args.check:
            path.write_text(text, encoding="utf-8")
    if stale and args.check:
        print(
            "settings_tables: not as declared in run_settings (run scripts/settings_tables.py): "
            + "; ".join(stale),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
