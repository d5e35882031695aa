"""Values far longer or odder than generated ones, in the path id and in every string of the body.

A server must refuse them with a 4xx and the envelope (413/414/431 allowed for the long ones) and
retry nothing; never a 5xx or a dropped connection (ROBUST). Body strings go out both escaped and
as raw UTF-8, since a server may decode the two differently.
"""

from __future__ import annotations

import uuid

from retry_contract.exchange import Expectation
from retry_contract.request_forms import PLAIN, RAW_UTF8
from retry_contract.scenarios.context import ScenarioContext

KIB = 1024
LENGTHS = {"1 KB": KIB, "64 KB": 64 * KIB, "1 MB": KIB * KIB}
ODD_TEXT = {
    "NUL": "retry\x00contract",
    "surrogate pair": "retry-😀-contract",
    "right-to-left marks": "\u200fretry\u202econtract\u202c",
}
ODD_PATH_ID = Expectation("PATH-UUID", frozenset({400, 404, 414}), "oversized or odd executionId")
ODD_NONCE = Expectation("BODY-NONCE", frozenset({400, 401, 403, 413}), "oversized or odd nonce, never issued")


def _long(length: int) -> str:
    """A string of `length` characters made of UUIDs: what a careless client might concatenate."""
    unit = str(uuid.UUID(int=0x059EDAA4A17A4102910E2C3591500CCE))
    return (unit * (length // len(unit) + 1))[:length]


def odd_path_ids(ctx: ScenarioContext) -> None:
    variants = {label: _long(length) for label, length in LENGTHS.items()}
    variants |= {label: text for label, text in ODD_TEXT.items()}
    for label, execution_id in variants.items():
        ctx.retry(execution_id, expect=ODD_PATH_ID, origin=f"ROBUST executionId: {label}")


def odd_nonces(ctx: ScenarioContext) -> None:
    execution_id = ctx.provisioner.failed_execution()
    variants = {label: _long(length) for label, length in LENGTHS.items()}
    variants |= ODD_TEXT
    for label, nonce in variants.items():
        for form in (PLAIN, RAW_UTF8):
            if form is RAW_UTF8 and nonce.isascii():
                continue  # the same bytes as the escaped form
            exchange = ctx.retry(
                execution_id,
                expect=ODD_NONCE,
                origin=f"ROBUST nonce: {label}, {form.description}",
                nonce=nonce,
                form=form,
            )
            if ctx.retried(exchange) or (exchange.status is not None and exchange.status < 300):
                execution_id = ctx.provisioner.failed_execution()  # this one was retried after all


SCENARIOS = (odd_path_ids, odd_nonces)
