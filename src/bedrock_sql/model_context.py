"""Where a model came from and what serves it, listed where models are: ``collect
--model-context needed`` (the default).

Four tables only describe models: the import and copy jobs that made them, and the
provisioned throughputs and custom model deployments that serve them. Each lives in its
model's own account and region, and no control judges them apart from their model. At
organization scale most account/regions hold no model at all, and listing these four tables
there is about half of a collect's calls. So by default a unit (account x region) lists them
only when its custom models or imported models listed one, or failed to list (then it may
hold one): the models' verdicts, ``in_use`` and ``served_by`` are the same either way. What
is not collected: in an account/region without models, a provisioned throughput of a
foundation model, and import or copy jobs that failed or are still running. The run's notes
say how many account/regions were not listed; ``collect --model-context all`` lists every one.
"""

from __future__ import annotations

from .engine import Engine
from .providers.base import Table

MODEL_CONTEXT_MODES = ("needed", "all")
DEFAULT_MODEL_CONTEXT = "needed"


def context_by_need(mode: str) -> bool:
    if mode not in MODEL_CONTEXT_MODES:
        raise ValueError(f"model_context must be one of {MODEL_CONTEXT_MODES}, not {mode!r}")
    return mode == "needed"


def context_notes(engine: Engine, tables: dict[str, Table]) -> list[str]:
    """The run's note when some account/regions were not listed for the context tables."""
    skipped = {name: n for name, n in engine.context_skipped.items() if n}
    if not skipped:
        return []
    depends = sorted({needed for name in skipped for needed in tables[name].context_of})
    units = max(skipped.values())  # every context table is skipped in the same units
    return [
        f"{', '.join(sorted(skipped))}: not listed in the {units} account/region(s) where "
        f"{' and '.join(depends)} listed nothing (collect --model-context all lists them everywhere)"
    ]
