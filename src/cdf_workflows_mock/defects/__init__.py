"""Deliberate server bugs ("defects") that the mock can switch on, to prove that a test suite catches them.

Each defect is a bug a real implementation of the retry endpoint could plausibly have, and it shows
only through the API's HTTP behaviour: no header, marker or back door tells a client that a defect is
on. Unless its description says otherwise a defect changes only
`POST /api/v1/projects/{project}/workflows/executions/{executionId}/retry`, so that a suite can still
provision its fixtures through the neighbouring endpoints.

The faithful mock knows nothing of this package; it builds on the faithful one. A defect is made of
one or more of (`base.Patch`):

- a subclass of the app's `Dispatcher` (who the caller is, which project they may use),
- a subclass of `SteppedHandlers`, the app's `Handlers` with the retry split into replaceable steps,
- a subclass of `SteppedStore`, the `MockStore` with the retry split into replaceable steps,
- a subclass of the model's `TaskEngine` (which executions are retried and how),
- a rewrite of the retry's answer (a serializer bug),
- a `Wire` in the `WireDefects` middleware (status, headers, bodies, dropped connections, and
  failures in front of the app that answer with the web framework's default error page).

The defects live by family: `auth`, `state`, `wire`, `responses`, `values`, `semantics`. Each family
declares its defects once, beside their implementation, as `base.Defect`s (name, description, the
requirements broken, the patch), in its `DEFECTS`; `catalogue` gathers the families in order. Adding a
defect is one entry in one family's `DEFECTS`.

Defects combine (`MockConfig(defects={...})`) unless two of them change the same method or attribute
of the same class; `check_combination` refuses those, as it refuses unknown names, when `create_app`
builds the mock (a caller that wants the answer earlier, such as a command line, calls it itself).
"""

from __future__ import annotations

from cdf_workflows_mock.defects.base import Defect
from cdf_workflows_mock.defects.catalogue import BY_NAME, CATALOGUE, check_combination
from cdf_workflows_mock.defects.compose import create_app, create_defective_app

__all__ = ["BY_NAME", "CATALOGUE", "Defect", "check_combination", "create_app", "create_defective_app"]
