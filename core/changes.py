"""What an edit of a pipeline changed, in words: the names of undo steps.

The app keeps its undo history as snapshots of the pipeline (its JSON form, see
:meth:`core.pipeline.Pipeline.to_dict`); :func:`describe_change` compares two of them
and says what happened, as the Edit menu shows it ("Undo add pool stage", "Undo
change stride of stage 1"), with a key that tells which edits continue one another
(typing "3", "30", "300" into one field is one step).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Change", "describe_change"]

STAGE_WORDS = {"conv": "convolution", "activation": "activation", "pool": "pool"}
FIELD_WORDS = {
    "mode": "mode", "stride": "stride", "padding": "padding", "padding_mode": "border mode",
    "cval": "padding value", "dilation": "dilation", "function": "activation",
    "alpha": "slope", "kernel_size": "window", "ceil_mode": "ceil mode",
    "count_include_pad": "count padding",
}
KERNEL_WORDS = {"weights": "weights", "bias": "bias", "divisor": "divisor", "flip": "flip",
                "name": "name"}


@dataclass(frozen=True)
class Change:
    """``text``: what changed ("add pool stage"); ``key``: edits with the same key
    continue one another (one field being typed into), or None (never merged)."""

    text: str
    key: tuple | None = None


def _kind(stage: dict) -> str:
    return STAGE_WORDS.get(stage.get("type"), "stage")


def describe_change(before: list[dict], after: list[dict]) -> Change:
    """Name the change from stage list ``before`` to ``after`` (``to_dict()["stages"]``)."""
    nb, na = len(before), len(after)
    if na == nb + 1:
        i = next((k for k in range(nb) if before[k] != after[k]), nb)
        if after[:i] + after[i + 1:] == before:
            return Change(f"add {_kind(after[i])} stage")
    if nb == na + 1:
        i = next((k for k in range(na) if before[k] != after[k]), na)
        if before[:i] + before[i + 1:] == after:
            return Change(f"remove {_kind(before[i])} stage {i + 1}")
    if nb != na:
        return Change("change the pipeline")
    diff = [k for k in range(nb) if before[k] != after[k]]
    if not diff:
        return Change("no change")
    if len(diff) == 2 and after[diff[0]] == before[diff[1]] and \
            after[diff[1]] == before[diff[0]] and diff[1] == diff[0] + 1:
        return Change(f"move {_kind(before[diff[0]])} stage {diff[0] + 1} down")
    if len(diff) > 1:
        return Change("change the pipeline")
    i = diff[0]
    b, a = before[i], after[i]
    where = f"stage {i + 1}"
    if b.get("type") != a.get("type"):
        return Change(f"replace {where}")
    fields = [f for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f)]
    if fields == ["kernels"]:
        return _kernel_change(i, b["kernels"], a["kernels"])
    if len(fields) == 1:
        f = fields[0]
        return Change(f"change {FIELD_WORDS.get(f, f)} of {where}", ("stage", i, f))
    return Change(f"change {where}")


def _kernel_change(i: int, before: list[dict], after: list[dict]) -> Change:
    where = f"stage {i + 1}"
    if len(after) == len(before) + 1:
        return Change(f"add kernel '{after[-1].get('name', '')}' to {where}")
    if len(before) == len(after) + 1:
        gone = next((k for k in range(len(after)) if before[k] != after[k]), len(after))
        return Change(f"remove kernel '{before[gone].get('name', '')}' from {where}")
    diff = [k for k in range(len(after)) if before[k] != after[k]]
    if len(diff) != 1:
        return Change(f"change the kernels of {where}")
    k = diff[0]
    b, a = before[k], after[k]
    name = a.get("name", "")
    fields = [f for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f)]
    if fields == ["name"]:
        return Change(f"rename kernel '{b.get('name', '')}' to '{name}'", ("kernel", i, k, "name"))
    if fields == ["weights"]:
        wb, wa = b["weights"], a["weights"]
        if _shape(wb) != _shape(wa):
            rows, cols = _shape(wa)[-2:]
            return Change(f"resize kernel '{name}' to {rows}x{cols}")
        cells = _changed_cells(wb, wa)
        if len(cells) == 1:
            return Change(f"edit kernel '{name}' weight {cells[0]}", ("kernel", i, k, cells[0]))
        return Change(f"change the weights of kernel '{name}'")
    if "name" in fields and "weights" in fields:
        return Change(f"set kernel {k + 1} of {where} to '{name}'")
    if len(fields) == 1:
        f = fields[0]
        return Change(f"change {KERNEL_WORDS.get(f, f)} of kernel '{name}'",
                      ("kernel", i, k, f))
    return Change(f"change kernel '{name}'")


def _shape(w) -> tuple:
    shape = []
    while isinstance(w, list):
        shape.append(len(w))
        w = w[0] if w else None
    return tuple(shape)


def _changed_cells(wb, wa) -> list[str]:
    """'(row, col)' (1-based, as the editor numbers them) of every changed weight."""
    out = []

    def walk(b, a, index):
        if isinstance(b, list):
            for n, (x, y) in enumerate(zip(b, a)):
                walk(x, y, index + (n + 1,))
        elif b != a:
            out.append("(" + ", ".join(str(v) for v in index[-2:]) + ")")

    walk(wb, wa, ())
    return out
