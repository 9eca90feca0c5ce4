"""Kubernetes resource quantities ("500m", "2", "16Gi") as numbers."""

import re
from decimal import Decimal

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_FACTORS: dict[str | None, Decimal] = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    **{s: Decimal(10) ** (3 * (i + 1)) for i, s in enumerate(("k", "M", "G", "T", "P", "E"))},
    **{s: Decimal(2) ** (10 * (i + 1)) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}


def quantity(value: str) -> Decimal | None:
    """A resource quantity's value: the API server rewrites "0.5" as "500m" and "1024Mi" as "1Gi"."""
    match = _QUANTITY.match(value)
    return None if match is None else Decimal(match.group(1)) * _FACTORS[match.group(2)]


def whole_cpus(value: str) -> int | None:
    """Threads that fit a CPU request: its whole cores, at least one (None if unreadable)."""
    cores = quantity(value)
    return None if cores is None else max(1, int(cores))
