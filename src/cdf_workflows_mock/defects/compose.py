"""Building the mock with defects switched on: the faithful app's parts, each slot replaced by the
composition of the chosen defects' variants, in the catalogue's order.

This is where the names of `MockConfig.defects` are checked (`check_combination`), once: the
configuration cannot know the catalogue, which builds on the app and so on the configuration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar, cast

from starlette.applications import Starlette
from starlette.middleware import Middleware

from cdf_workflows_mock.app import assemble_app, create_faithful_app
from cdf_workflows_mock.config import MockConfig
from cdf_workflows_mock.defects.base import DefectiveDispatcher, SteppedHandlers, SteppedStore
from cdf_workflows_mock.defects.catalogue import CATALOGUE, check_combination
from cdf_workflows_mock.defects.wire import WireDefects
from cdf_workflows_mock.engine import TaskEngine

_T = TypeVar("_T")


def _compose(base: type[_T], variants: Sequence[type[_T] | None]) -> type[_T]:
    chosen = [variant for variant in variants if variant is not None]
    if not chosen:
        return base
    if len(chosen) == 1:
        return chosen[0]
    return cast("type[_T]", type(f"Defective{base.__name__}", tuple(chosen), {}))


def create_defective_app(config: MockConfig) -> Starlette:
    """The mock with `config.defects` switched on; a ValueError for an unknown defect, or for two that
    change the same thing."""
    check_combination(config.defects)
    patches = [defect.patch for defect in CATALOGUE if defect.name in config.defects]
    engine = _compose(TaskEngine, [patch.engine for patch in patches])(config.clock)
    store = _compose(SteppedStore, [patch.store for patch in patches])(
        config.clock, config.nonce_ttl_millis, engine=engine, shape=config.shape
    )
    answer_rewrites = [patch.answer for patch in patches if patch.answer is not None]
    handlers = _compose(SteppedHandlers, [patch.handlers for patch in patches])(store, answer_rewrites)
    dispatcher = _compose(DefectiveDispatcher, [patch.dispatcher for patch in patches])(config, handlers)
    wires = [patch.wire for patch in patches if patch.wire is not None]
    outer = [Middleware(WireDefects, wires=wires)] if wires else []
    return assemble_app(config, store, dispatcher, outer)


def create_app(config: MockConfig | None = None) -> Starlette:
    """A fresh mock, its own store: the faithful one, or with `config.defects` switched on."""
    config = config if config is not None else MockConfig()
    return create_defective_app(config) if config.defects else create_faithful_app(config)
