"""Compliance framework mappings of the controls: which requirement each control serves.

A control's header names them on a ``frameworks:`` line (indented ``--   `` lines continue
it): one ``FRAMEWORK: ID, ID, ...`` group per framework, groups separated by ``;``::

    -- frameworks: nist-800-53-rev5: SC-12, SC-12(2); pci-dss-v4.0.1: 3.7.4;
    --   aws-securityhub: KMS.4

A framework is named by a key that carries its version (``nist-800-53-rev5``). The keys in
:data:`FRAMEWORKS` are known: their requirements are written the way Security Hub writes
related requirements (``NIST.800-53.r5 SC-12``) in ASFF, and their full title goes to OCSF.
A user control may name any other key (lower-case letters, digits, ``.`` and ``-``): it is
carried through every export as given.

A mapping says that a control gathers evidence toward a requirement, not that passing it
satisfies the requirement: README "Frameworks" lists each mapping and its public source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from .errors import UserError

if TYPE_CHECKING:
    from .controls import Control


@dataclass(frozen=True)
class Framework:
    key: str  # as written in control headers and given to --framework
    title: str  # the standard's name and version, as an auditor writes it
    asff: str  # how Security Hub writes one of its requirements ({id}): Compliance.RelatedRequirements


FRAMEWORKS = {
    framework.key: framework
    for framework in (
        Framework("nist-800-53-rev5", "NIST SP 800-53 Revision 5", "NIST.800-53.r5 {id}"),
        Framework("pci-dss-v4.0.1", "PCI DSS v4.0.1", "PCI DSS v4.0.1/{id}"),
        Framework("cis-aws-foundations-v5.0.0", "CIS AWS Foundations Benchmark v5.0.0",
                  "CIS AWS Foundations Benchmark v5.0.0/{id}"),
        Framework("cis-aws-foundations-v3.0.0", "CIS AWS Foundations Benchmark v3.0.0",
                  "CIS AWS Foundations Benchmark v3.0.0/{id}"),
        Framework("iso-27001-2022", "ISO/IEC 27001:2022 Annex A", "ISO/IEC 27001:2022 Annex A {id}"),
        Framework("soc2-tsc-2017", "AICPA Trust Services Criteria (2017, revised points of focus 2022)",
                  "AICPA TSC 2017 {id}"),
        Framework("aws-securityhub", "AWS Security Hub CSPM controls", "AWS Security Hub {id}"),
    )
}

#: ASFF takes at most 32 Compliance.RelatedRequirements (Security Hub API reference).
ASFF_MAX_RELATED_REQUIREMENTS = 32

_KEY = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
# A requirement id: what standards use (SC-28(1), 3.7.4, A.8.24, CC6.1, KMS.4), never a separator.
_REQUIREMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.()/_ -]*$")


@dataclass(frozen=True)
class Requirement:
    framework: str  # a framework key
    id: str  # the requirement within it, as the framework writes it

    @property
    def label(self) -> str:
        """``framework:id``, as CSV/JSON rows carry it."""
        return f"{self.framework}:{self.id}"

    @property
    def asff(self) -> str:
        known = FRAMEWORKS.get(self.framework)
        return known.asff.format(id=self.id) if known else f"{self.framework} {self.id}"


def parse_frameworks(text: str, source: str) -> tuple[Requirement, ...]:
    """The requirements of a ``frameworks:`` header value; a malformed one is a
    :class:`UserError` naming the control file."""
    requirements: list[Requirement] = []
    seen: set[str] = set()
    for group in (part.strip() for part in text.split(";")):
        if not group:
            continue  # a trailing ';' is allowed
        key, colon, ids = group.partition(":")
        key = key.strip().lower()
        if not colon or not _KEY.match(key):
            raise UserError(f"control {source}: frameworks: {group!r} is not 'framework-key: ID, ID'")
        if key in seen:
            raise UserError(f"control {source}: frameworks: {key} is named twice")
        seen.add(key)
        names = [name.strip() for name in ids.split(",")]
        bad = [name for name in names if not _REQUIREMENT.match(name)]
        if bad:
            raise UserError(f"control {source}: frameworks: {key}: {bad[0]!r} is not a requirement id")
        requirements.extend(Requirement(key, name) for name in dict.fromkeys(names))
    return tuple(requirements)


def framework_keys(controls: Iterable[Control]) -> list[str]:
    """Every framework the controls map to, sorted."""
    return sorted({r.framework for control in controls for r in control.frameworks})


def select_framework(controls: Sequence[Control], name: str, every: Sequence[Control] = ()) -> list[Control]:
    """Those of ``controls`` mapped to framework ``name`` (its key, any case).

    A name no control of ``every`` (default: ``controls``) maps to is a :class:`UserError`
    listing the frameworks they do map to."""
    key = name.strip().lower()
    known = framework_keys(every or controls)
    if key not in known:
        raise UserError(f"--framework {name}: unknown framework; the controls map to: {', '.join(known) or 'none'}")
    return [c for c in controls if any(r.framework == key for r in c.frameworks)]


def requirement_labels(requirements: Iterable[Requirement]) -> list[str]:
    return [r.label for r in requirements]


def asff_related_requirements(requirements: Sequence[Requirement]) -> list[str]:
    """Compliance.RelatedRequirements: at most 32 (the rest stay in ProductFields)."""
    return [r.asff for r in requirements][:ASFF_MAX_RELATED_REQUIREMENTS]


def standards_of(requirements: Iterable[Requirement]) -> list[str]:
    """The titles of the frameworks the requirements belong to (OCSF compliance.standards)."""
    keys = dict.fromkeys(r.framework for r in requirements)
    return [FRAMEWORKS[key].title if key in FRAMEWORKS else key for key in keys]


def summary_text(requirements: Iterable[Requirement]) -> str:
    """``nist-800-53-rev5: SC-12, SC-13; iso-27001-2022: 8.24`` - as a header writes it."""
    groups: dict[str, list[str]] = {}
    for requirement in requirements:
        groups.setdefault(requirement.framework, []).append(requirement.id)
    return "; ".join(f"{key}: {', '.join(ids)}" for key, ids in groups.items())
