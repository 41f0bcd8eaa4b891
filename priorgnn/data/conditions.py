"""Perturbation condition strings, GEARS style.

A condition names the perturbed genes: ``ctrl`` (no perturbation), ``A+ctrl`` (a single) or
``A+B`` (a double). ``ctrl+A`` is accepted for a single. Canonical form: singles are ``A+ctrl``;
doubles list their two genes in sorted order, so ``B+A`` and ``A+B`` name one condition.
Higher-order combinations are not supported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from priorgnn.errors import ConditionFormatError

CTRL = "ctrl"
SEP = "+"

__all__ = [
    "CTRL",
    "SEP",
    "parse_condition",
    "canonical_condition",
    "make_condition",
    "condition_kind",
    "genes_of",
    "perturbed_genes",
]


def parse_condition(condition: str) -> tuple[str, ...]:
    """Return the perturbed genes of ``condition`` (empty for control), validating its format.

    Raises
    ------
    ConditionFormatError
        For an empty part (``A+``, ``+ctrl``), more than two parts (``A+B+C``), the same gene twice,
        or a control label in the wrong case (``Ctrl``).
    """
    if not isinstance(condition, str):
        raise ConditionFormatError(
            f"condition {condition!r} is a {type(condition).__name__}, not a string. "
            "Conditions are strings like 'ctrl', 'A+ctrl' or 'A+B'."
        )
    cond = condition.strip()
    if cond == CTRL:
        return ()
    if cond.lower() == CTRL:
        raise ConditionFormatError(
            f"condition {condition!r}: the control label is spelled 'ctrl' (lower case). "
            "Rename it, or pass control_label= when loading scPerturb-style data."
        )
    parts = cond.split(SEP)
    if any(p.strip() == "" for p in parts):
        raise ConditionFormatError(
            f"condition {condition!r} has an empty gene name. Write singles as 'A+ctrl' and "
            "doubles as 'A+B'."
        )
    if len(parts) > 2:
        raise ConditionFormatError(
            f"condition {condition!r} combines {len(parts)} perturbations; only singles ('A+ctrl') "
            "and doubles ('A+B') are supported. Remove these cells or split the condition."
        )
    parts = [p.strip() for p in parts]
    for p in parts:
        if p != CTRL and p.lower() == CTRL:
            raise ConditionFormatError(
                f"condition {condition!r}: the control label is spelled 'ctrl' (lower case)."
            )
    genes = [p for p in parts if p != CTRL]
    if len(parts) == 1:
        raise ConditionFormatError(
            f"condition {condition!r} is a bare gene name; write a single as '{parts[0]}+ctrl'."
        )
    if not genes:
        raise ConditionFormatError(f"condition {condition!r}: write the control as 'ctrl'.")
    if len(genes) == 2 and genes[0] == genes[1]:
        raise ConditionFormatError(
            f"condition {condition!r} perturbs the same gene twice; write it as '{genes[0]}+ctrl'."
        )
    return tuple(sorted(genes))


def make_condition(genes: Iterable[str]) -> str:
    """The canonical condition for a collection of 0, 1 or 2 genes."""
    genes = sorted(set(genes))
    if len(genes) == 0:
        return CTRL
    if len(genes) == 1:
        return f"{genes[0]}{SEP}{CTRL}"
    if len(genes) == 2:
        return f"{genes[0]}{SEP}{genes[1]}"
    raise ConditionFormatError(f"{len(genes)} genes {genes}: only singles and doubles are supported.")


def canonical_condition(condition: str) -> str:
    """Validate ``condition`` and return its canonical spelling."""
    return make_condition(parse_condition(condition))


def condition_kind(condition: str) -> str:
    """``'ctrl'``, ``'single'`` or ``'double'``."""
    return ("ctrl", "single", "double")[len(parse_condition(condition))]


def genes_of(conditions: Sequence[str]) -> list[str]:
    """Sorted unique genes perturbed in any of ``conditions``."""
    out: set[str] = set()
    for c in conditions:
        out.update(parse_condition(c))
    return sorted(out)


perturbed_genes = genes_of
