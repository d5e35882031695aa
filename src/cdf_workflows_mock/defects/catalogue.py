"""The catalogue of defects: every family's `DEFECTS`, gathered in order, and which of them combine.

A defect is declared once, in its family's module beside its implementation (`base.Defect`: its name,
what it does, the requirements it breaks, how it is made); this module only gathers the families and
refuses two defects of the same name. The order of the catalogue, family by family and within each
family as it lists them, is the order in which defects are listed, checked and composed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from cdf_workflows_mock.defects import auth, responses, semantics, state, values, wire
from cdf_workflows_mock.defects.base import Defect, DefectiveDispatcher, SteppedHandlers, SteppedStore
from cdf_workflows_mock.engine import TaskEngine

# The families, in the catalogue's order.
FAMILIES = (auth, state, wire, responses, values, semantics)


def _gather() -> tuple[Defect, ...]:
    catalogue = tuple(defect for family in FAMILIES for defect in family.DEFECTS)
    names = [defect.name for defect in catalogue]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise RuntimeError(f"defects declared twice: {', '.join(twice)}")
    return catalogue


CATALOGUE: tuple[Defect, ...] = _gather()
BY_NAME: Mapping[str, Defect] = MappingProxyType({defect.name: defect for defect in CATALOGUE})
_ORDER: Mapping[str, int] = MappingProxyType({defect.name: index for index, defect in enumerate(CATALOGUE)})

# The class each slot's variants derive from: what two variants share below it, they both change.
_SLOTS: tuple[tuple[str, type], ...] = (
    ("dispatcher", DefectiveDispatcher),
    ("handlers", SteppedHandlers),
    ("store", SteppedStore),
    ("engine", TaskEngine),
)


def _changed_names(variant: type, base: type) -> set[str]:
    return {
        name
        for klass in variant.__mro__
        if klass not in base.__mro__
        for name in vars(klass)
        if not name.startswith("__")
    }


def check_combination(names: Iterable[str]) -> None:
    """Raise ValueError for an unknown defect, or for two defects that change the same thing."""
    chosen = sorted(set(names), key=lambda name: (_ORDER.get(name, len(_ORDER)), name))
    unknown = [name for name in chosen if name not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown mock defect(s): {', '.join(unknown)}; valid names: {', '.join(BY_NAME)}")
    for slot, base in _SLOTS:
        variants = [(name, getattr(BY_NAME[name].patch, slot)) for name in chosen]
        present = [(name, variant) for name, variant in variants if variant is not None]
        for (first, one), (second, other) in itertools.combinations(present, 2):
            shared = _changed_names(one, base) & _changed_names(other, base)
            if shared:
                raise ValueError(
                    f"mock defects {first} and {second} both change {', '.join(sorted(shared))}; "
                    "switch on one of them at a time"
                )
