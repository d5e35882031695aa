"""A failure as shell commands: the failing request as one curl command, and the whole sequence that
reproduces it on a server as a bash script (curl and jq).

The script creates the workflow and its version with the recorded task graph, takes a session's nonce,
runs it with the recorded metadata and input, ends the task attempts through task update the way the
recorded execution's ended (retrying it where it had failed in between), waits for the recorded state,
and sends the failing request. Credentials come from the environment (`$CDF_TOKEN`, ...), never the
run's; every value is JSON-encoded in Python and shell-quoted with `shlex`, or passed to jq as an
argument, never spliced into a string by hand.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any
from urllib.parse import quote, urlsplit

from retry_contract.domain import ExecutionStatus, TaskStatus
from retry_contract.exchange import Credential, Exchange, nonce_in
from retry_contract.reports.replay_record import (
    CLIENT_ID_PLACEHOLDER,
    CLIENT_SECRET_PLACEHOLDER,
    EXECUTION_PLACEHOLDER,
    EXECUTION_VARIABLE,
    INVALID_TOKEN,
    NONCE_FIELD,
    NONCE_PLACEHOLDER,
    READONLY_TOKEN_PLACEHOLDER,
    RETRY_PATH,
    TOKEN_PLACEHOLDER,
    NonceUse,
    Precondition,
    ReplayRecord,
    RunFacts,
    abbreviated,
    header_value,
    issued,
    repeated_unit,
    request_form_named,
    role_of,
    session_item_shown,
    with_placeholder_nonce,
)
from retry_contract.secrets_registry import SecretRegistry

BASE_URL_VARIABLE = "BASE_URL"
# Braced: the path goes on right after it.
BASE_URL_PLACEHOLDER = "${" + BASE_URL_VARIABLE + "}"

_PLACEHOLDERS = (
    BASE_URL_PLACEHOLDER,
    TOKEN_PLACEHOLDER,
    READONLY_TOKEN_PLACEHOLDER,
    NONCE_PLACEHOLDER,
    EXECUTION_PLACEHOLDER,
    CLIENT_ID_PLACEHOLDER,
    CLIENT_SECRET_PLACEHOLDER,
)
_UNESCAPE_PLACEHOLDER = re.compile(
    r"\\\$("
    + "|".join(
        re.escape(p[1:]) if p.endswith("}") else re.escape(p[1:]) + r"(?![A-Za-z0-9_])" for p in _PLACEHOLDERS
    )
    + ")"
)
_SKIPPED_HEADERS = frozenset(
    {"content-length", "host", "user-agent", "accept-encoding", "connection", "accept"}
)


def authorization_shown(exchange: Exchange) -> str | None:
    """The Authorization header as a reader sends it: the placeholder of its credential's role."""
    header = header_value(exchange.request_headers, "authorization")
    if header is None:
        return None
    shown = {
        Credential.WRITE: f"Bearer {TOKEN_PLACEHOLDER}",
        Credential.READONLY: f"Bearer {READONLY_TOKEN_PLACEHOLDER}",
        Credential.UNKNOWN_TOKEN: f"Bearer {INVALID_TOKEN}",
    }
    return shown.get(role_of(exchange), header)


def curl(
    exchange: Exchange,
    secrets: SecretRegistry,
    *,
    execution_placeholder: bool = False,
    base_url_placeholder: bool = False,
    quiet: bool = False,
) -> str:
    """The request as a curl command; with `execution_placeholder`, the path's execution id is
    `$EXECUTION_ID` (the reader recreates an execution in the precondition's state); with
    `base_url_placeholder`, the server is `$BASE_URL` (a script's); `quiet`: no progress meter."""
    url = _shown_url(exchange, execution_placeholder, base_url_placeholder)
    shown = _quote(abbreviated(url, secrets))
    command = ["curl", *(["-sS"] if quiet else []), "-i", "-X", exchange.method]
    command.append(shown)
    for name, value in exchange.request_headers.items():
        if name.lower() in _SKIPPED_HEADERS:
            continue
        if name.lower() == "authorization":
            value = authorization_shown(exchange) or value
        command += ["-H", _quote(f"{name}: {value}")]
    if exchange.request_body is None:
        return secrets.redact(" ".join(command))
    body = abbreviated(_body_text(exchange, secrets), secrets)
    if not exchange.request_gzipped:
        return secrets.redact(" ".join([*command, "--data-binary", _quote(body)]))
    # The body went out gzipped: compress it the same way on the reader's side.
    piped = f"printf '%s' {_quote(body)} | gzip -c | {' '.join([*command, '--data-binary', '@-'])}"
    return secrets.redact(piped)


# The environment variable that holds the token of each credential role a script sends.
_TOKEN_VARIABLES = {Credential.WRITE: "CDF_TOKEN", Credential.READONLY: "CDF_READONLY_TOKEN"}

_LONG_ID_SENDER = """\
import json, os, urllib.error, urllib.parse, urllib.request
spec = json.loads({spec})
unit, length = spec["unit"], spec["length"]
identity = urllib.parse.quote((unit * (length // len(unit) + 1))[:length], safe="")
headers = dict(spec["headers"])
if spec["token_variable"]:
    headers["Authorization"] = "Bearer " + os.environ[spec["token_variable"]]
body = spec["body"]
if body is not None and spec["nonce"]:
    body = body.replace("$NONCE", os.environ["NONCE"])
request = urllib.request.Request(
    os.environ["BASE_URL"] + spec["path"].replace("{{id}}", identity),
    data=None if body is None else body.encode(),
    headers=headers,
    method=spec["method"],
)
try:
    answer = urllib.request.urlopen(request, timeout=60)
except urllib.error.HTTPError as error:
    answer = error
print(f"HTTP/1.1 {{answer.status}} {{answer.reason}}")
print("".join(f"{{name}}: {{value}}\\n" for name, value in answer.headers.items()))
print(answer.read().decode("utf-8", "replace"))
"""


def long_id_request(exchange: Exchange, secrets: SecretRegistry) -> str | None:
    """The request, for a path id of a megabyte, as a python3 program on bash's standard input: no
    program's argument or environment string may hold more than 128 KiB on Linux, and curl reads no
    longer URL from a config file, so the id is made where it is sent. None for another request."""
    parts = urlsplit(exchange.url)
    match = RETRY_PATH.match(parts.path)
    execution_id = exchange.execution_id
    repeated = repeated_unit(execution_id, secrets) if execution_id is not None and match else None
    if match is None or repeated is None or exchange.request_gzipped:
        return None
    role = role_of(exchange)
    headers = {
        name: value
        for name, value in exchange.request_headers.items()
        if name.lower() not in _SKIPPED_HEADERS and name.lower() != "authorization"
    }
    if role not in _TOKEN_VARIABLES and (shown := authorization_shown(exchange)) is not None:
        headers["Authorization"] = shown
    path = parts.path[len(match.group("prefix")) : match.start("id")] + "{id}" + parts.path[match.end("id") :]
    spec = {
        "method": exchange.method,
        "path": path + (f"?{parts.query}" if parts.query else ""),
        "unit": repeated[0],
        "length": repeated[1],
        "headers": headers,
        "token_variable": _TOKEN_VARIABLES.get(role),
        "body": _body_text(exchange, secrets) if exchange.request_body is not None else None,
        "nonce": issued(nonce_in(exchange.request_json()), secrets),
    }
    program = _LONG_ID_SENDER.format(spec=repr(json.dumps(spec, ensure_ascii=False)))
    return f"export {BASE_URL_VARIABLE} NONCE\npython3 - <<'PY'\n{program}PY"


def _shown_url(exchange: Exchange, execution_placeholder: bool, base_url_placeholder: bool) -> str:
    """The request's URL with, for a retry, `${EXECUTION_ID}` for the execution's id (an id made from
    it keeps what was added around it) and `${BASE_URL}` for the server."""
    parts = urlsplit(exchange.url)
    match = RETRY_PATH.match(parts.path)
    if match is None:
        return exchange.url
    path = parts.path
    if execution_placeholder:
        precondition = Precondition.of(exchange)
        segment = (
            quote(precondition.id_prefix, safe="")
            + EXECUTION_PLACEHOLDER
            + quote(precondition.id_suffix, safe="")
        )
        path = path[: match.start("id")] + segment + path[match.end("id") :]
    if not base_url_placeholder:
        return parts._replace(path=path).geturl()
    query = f"?{parts.query}" if parts.query else ""
    return BASE_URL_PLACEHOLDER + path[len(match.group("prefix")) :] + query


def _body_text(exchange: Exchange, secrets: SecretRegistry) -> str:
    """The body as the server read it; an issued nonce becomes `$NONCE`, in the same wire form."""
    body = exchange.request_json()
    if issued(nonce_in(body), secrets):
        form = request_form_named(exchange.request_form)
        dumps = form.dumps if form is not None else json.dumps
        return dumps(with_placeholder_nonce(body))
    content = exchange.request_content()
    return content.decode("utf-8", "replace") if content else ""


def _quote(text: str) -> str:
    # Double quotes keep the placeholders expandable; everything else is escaped for the shell.
    if not any(placeholder in text for placeholder in _PLACEHOLDERS):
        return shlex.quote(text)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return '"' + _UNESCAPE_PLACEHOLDER.sub(r"$\1", escaped) + '"'


def session_curl(exchange: Exchange, facts: RunFacts) -> str:
    """The request that creates a session of the write credentials, and exports its nonce."""
    parts = urlsplit(exchange.url)
    match = RETRY_PATH.match(parts.path)
    prefix = match.group("prefix") if match else ""
    url = f"{parts.scheme}://{parts.netloc}{prefix}/api/v1/projects/{quote(facts.project, safe='')}/sessions"
    body = json.dumps({"items": [session_item_shown(facts.session_item)]})
    command = " ".join(
        [
            "curl -s -X POST",
            _quote(url),
            "-H",
            _quote(f"Authorization: Bearer {TOKEN_PLACEHOLDER}"),
            "-H",
            _quote("Content-Type: application/json"),
            "--data-binary",
            _quote(body),
        ]
    )
    return f"export NONCE=\"$({command} | jq -r '.{NONCE_FIELD}')\""


def long_id_command(execution_id: str | None, secrets: SecretRegistry) -> str | None:
    """A shell line that sets a long, repetitive path id (percent-encoded), or None. Not exported: a
    megabyte in the environment would be more than any program could be started with."""
    repeated = repeated_unit(execution_id, secrets) if execution_id is not None else None
    if repeated is None:
        return None
    unit, length = repeated
    program = (
        "import urllib.parse; "
        f"print(urllib.parse.quote(({unit!r} * {length // len(unit) + 1})[:{length}], safe=''), end='')"
    )
    return f'{EXECUTION_VARIABLE}="$(python3 -c {shlex.quote(program)})"'


def _base_url_of(url: str) -> str:
    """The server part of a retry URL: scheme, host and any path prefix before `/api/v1`."""
    parts = urlsplit(url)
    match = RETRY_PATH.match(parts.path)
    prefix = match.group("prefix") if match else ""
    return f"{parts.scheme}://{parts.netloc}{prefix}"


# -- the whole sequence as a script ----------------------------------------------------------------

# How long the script waits for an execution or an attempt to get where it must (polls 5 times a second).
SCRIPT_WAIT_SECONDS = 60
_POLLS = SCRIPT_WAIT_SECONDS * 5

_HELPERS = f"""\
cdf() {{  # METHOD PATH [curl options]: the answer's body; exits on an answer that is not 2xx
  local method=$1 path=$2
  shift 2
  curl -sS --fail-with-body -X "$method" "$API$path" -H "Authorization: Bearer $CDF_TOKEN" \\
    -H 'Content-Type: application/json' "$@"
}}
enc() {{ jq -rn --arg value "$1" '$value | @uri'; }}
new_nonce() {{ cdf POST /sessions --data-binary "$SESSION_BODY" | jq -er '.{NONCE_FIELD}'; }}
execution() {{ cdf GET "/workflows/executions/$(enc "$1")"; }}
await_execution() {{  # ID JQ-TEST: read the execution until the test holds
  local _
  for _ in $(seq {_POLLS}); do
    if execution "$1" | jq -e "$2" >/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "execution $1: not $2 after {SCRIPT_WAIT_SECONDS} s" >&2
  return 1
}}
end_attempt() {{  # ID TASK STATUS [OUTPUT]: end the attempt of TASK in progress through task update
  local attempt="" _ body
  for _ in $(seq {_POLLS}); do
    attempt=$(execution "$1" | jq -r --arg task "$2" \\
      '[.executedTasks[]? | select(.externalId == $task and .status == "IN_PROGRESS")] | last | .id // empty')
    if [ -n "$attempt" ]; then break; fi
    sleep 0.2
  done
  if [ -z "$attempt" ]; then echo "task $2 of execution $1 has no attempt in progress" >&2; return 1; fi
  body=$(jq -cn --arg status "$3" --argjson output "${{4:-null}}" \\
    '{{status: $status}} + (if $output == null then {{}} else {{output: $output}} end)')
  cdf POST "/workflows/tasks/$(enc "$attempt")/update" --data-binary "$body" >/dev/null
}}
retry_with() {{  # ID NONCE: retry the execution
  cdf POST "/workflows/executions/$(enc "$1")/retry" \\
    --data-binary "$(jq -cn --arg nonce "$2" '{{authentication: {{nonce: $nonce}}}}')" >/dev/null
}}
"""


def _json_argument(value: Any) -> str:
    """A JSON value as one shell word."""
    return shlex.quote(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _status_test(status: str) -> str:
    return shlex.quote(f".status == {json.dumps(status)}")


def _session_body(facts: RunFacts) -> str:
    """The line that sets the body of `POST /sessions`: client credentials from the environment."""
    item = session_item_shown(facts.session_item)
    variables = {CLIENT_ID_PLACEHOLDER: "CDF_CLIENT_ID", CLIENT_SECRET_PLACEHOLDER: "CDF_CLIENT_SECRET"}
    from_environment = {key: variables[value] for key, value in item.items() if value in variables}
    if not from_environment:
        return f"SESSION_BODY={_json_argument({'items': [item]})}"
    fixed = {key: value for key, value in item.items() if key not in from_environment}
    arguments = " ".join(f'--arg {key} "${name}"' for key, name in from_environment.items())
    fields = ", ".join(f"{key}: ${key}" for key in from_environment)
    return (
        f"SESSION_BODY=$(jq -cn {arguments} --argjson fixed {_json_argument(fixed)} "
        + shlex.quote(f"{{items: [$fixed + {{{fields}}}]}}")
        + ")"
    )


def _creation(precondition: Precondition) -> list[str]:
    """The body of `create_execution`: the recorded execution, anew, its id printed."""
    workflow, version = precondition.workflow_external_id or "", precondition.version or "1"
    run: dict[str, Any] = {}
    if precondition.workflow_input is not None:
        run["input"] = precondition.workflow_input
    if precondition.metadata is not None:
        run["metadata"] = dict(precondition.metadata)
    description = "retry-contract reproduction; safe to delete"
    version_item = {
        "workflowExternalId": workflow,
        "version": version,
        "workflowDefinition": {"tasks": precondition.tasks},
    }
    run_path = f"/workflows/{quote(workflow, safe='')}/versions/{quote(version, safe='')}/run"
    lines = [
        "  local id",
        "  cdf POST /workflows --data-binary "
        + _json_argument({"items": [{"externalId": workflow, "description": description}]})
        + " >/dev/null",
        "  cdf POST /workflows/versions --data-binary "
        + _json_argument({"items": [version_item]})
        + " >/dev/null",
        f"  id=$(cdf POST {shlex.quote(run_path)} --data-binary \\",
        f'    "$(jq -cn --arg nonce "$(new_nonce)" --argjson run {_json_argument(run)} '
        + shlex.quote("$run + {authentication: {nonce: $nonce}}")
        + ')" | jq -er .id)',
    ]
    for update in precondition.drive:
        if update.retry_first:
            lines.append('  retry_with "$id" "$(new_nonce)"')
        output = f" {_json_argument(dict(update.output))}" if update.output is not None else ""
        lines.append(f'  end_attempt "$id" {shlex.quote(update.task)} {update.status}{output}')
    status = precondition.status or ""
    if status == ExecutionStatus.TERMINATED:
        reason = _json_argument({"reason": "retry-contract reproduction"})
        lines.append(
            f'  cdf POST "/workflows/executions/$(enc "$id")/cancel" --data-binary {reason} >/dev/null'
        )
    if status == ExecutionStatus.RUNNING:
        running = f'[.executedTasks[]? | select(.status == "{TaskStatus.IN_PROGRESS}")] | length > 0'
        lines.append(
            f'  await_execution "$id" {shlex.quote(f".status == {json.dumps(status)} and ({running})")}'
        )
    else:
        lines.append(f'  await_execution "$id" {_status_test(status)}')
    lines.append('  echo "$id"')
    return lines


def script(exchange: Exchange, record: ReplayRecord, facts: RunFacts, secrets: SecretRegistry) -> str:
    """The bash script that reproduces the failure of `record` (sent as `exchange`): see the module."""
    precondition = record.precondition
    role = role_of(exchange)
    if facts.base_url is not None:
        where = f"the run's server, {facts.base_url}; CDF_BASE_URL points it at another"
        base = [
            f"RECORDED_BASE_URL={shlex.quote(facts.base_url)}",
            f'{BASE_URL_VARIABLE}="${{CDF_BASE_URL:-$RECORDED_BASE_URL}}"',
        ]
    else:
        # An embedded mock or an app served in-process: its port is gone with the run.
        where = "CDF_BASE_URL (the run's target was gone with the run)"
        # No quote in the message: bash reads one inside "${...:?...}" as a quote.
        base = [f'{BASE_URL_VARIABLE}="${{CDF_BASE_URL:?set CDF_BASE_URL: the target of the run is gone}}"']
    lines = [
        "#!/usr/bin/env bash",
        f"# Failure {record.failure} of a retry-contract run, {record.requirement}: recreates the state its",
        "# request met through the API, then sends it again. Needs curl and jq; credentials come from the",
        f"# environment, never from this file. Target: {where}.",
        "set -euo pipefail",
        "shopt -s inherit_errexit",
        ': "${CDF_TOKEN:?set CDF_TOKEN: a token with workflowOrchestrationACL:READ+WRITE}"',
    ]
    if role is Credential.READONLY:
        lines.append(': "${CDF_READONLY_TOKEN:?set CDF_READONLY_TOKEN to a valid token without WRITE}"')
    lines += [
        *base,
        f'API="${BASE_URL_VARIABLE}/api/v1/projects/"{shlex.quote(quote(facts.project, safe=""))}',
        _session_body(facts),
        _HELPERS.rstrip("\n"),
    ]
    long_id = long_id_command(record.execution_id, secrets) if not precondition.exists else None
    if precondition.exists and precondition.tasks is not None:
        lines += [
            "create_execution() {  # the recorded execution, anew: prints its id",
            *_creation(precondition),
            "}",
        ]
        lines.append(f"{EXECUTION_VARIABLE}=$(create_execution)")
        lines.append(f"export {EXECUTION_VARIABLE}")
        lines.append(f'echo "created execution ${EXECUTION_VARIABLE} in status {precondition.status}" >&2')
    elif precondition.exists:
        lines.append(
            f': "${{{EXECUTION_VARIABLE}:?the report has no task graph of workflow '
            f'{precondition.workflow_external_id}: create an execution in its state and export its id}}"'
        )
    sender = long_id_request(exchange, secrets) if long_id is not None else None
    if long_id is not None and sender is None:
        lines.append(long_id)
    if record.nonce is not None:
        lines.append('NONCE="$(new_nonce)"')
        lines.append("export NONCE")
    if record.nonce is NonceUse.SPENT:
        lines.append(
            "# The request met a nonce already accepted once: spend it on another such execution first."
        )
        lines.append('retry_with "$(create_execution)" "$NONCE"')
    if exchange.first_attempt_took_effect and precondition.exists:
        lines.append(
            "# The run's request was re-sent after its answer was lost; its first attempt took effect."
        )
        lines.append(f'retry_with "${EXECUTION_VARIABLE}" "$(new_nonce)"')
    if exchange.expectation is not None:
        statuses = ", ".join(str(s) for s in sorted(exchange.expectation.statuses))
        lines.append(f"# Expected: {exchange.expectation.requirement}, status {statuses}.")
    lines.append(
        sender
        or curl(
            exchange,
            secrets,
            execution_placeholder=precondition.exists or long_id is not None,
            base_url_placeholder=True,
            quiet=True,
        )
    )
    return secrets.redact("\n".join(lines) + "\n")
