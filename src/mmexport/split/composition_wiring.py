"""The wiring checks of a composition manifest: every wire leads somewhere real, and the parts
form no cycle (their dependency levels, which SplitSession runs level by level).

Kept apart from the parsing in ``composition.py``; errors name the field, as the parser's do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmexport.core.errors import ArtifactError

if TYPE_CHECKING:
    from mmexport.split.composition import Composition, Part, Wire


def check_wiring(c: Composition, where: str) -> None:
    """Every wire names a model input, a part's declared output, or a part; mask parts have flags."""
    parts = {p.name: p for p in c.parts}
    inputs = set(c.spec.input_names)

    def check(wire: Wire, at: str) -> None:
        if wire.kind == "input" and wire.name not in inputs:
            raise ArtifactError(
                where,
                f"field '{at}' reads model input {wire.name!r}, which the spec does not declare",
                hint=f"inputs: {', '.join(sorted(inputs))}",
            )
        if wire.kind in ("part", "present") and wire.name not in parts:
            raise ArtifactError(
                where,
                f"field '{at}' refers to part {wire.name!r}, which 'parts' does not hold",
                hint=f"parts: {', '.join(parts)}",
            )
        if wire.kind == "part" and wire.output not in parts[wire.name].outputs:
            raise ArtifactError(
                where,
                f"field '{at}' reads output {wire.output!r} of part {wire.name!r}, which has "
                f"{', '.join(parts[wire.name].outputs)}",
            )

    for i, part in enumerate(c.parts):
        for name, wire in part.inputs.items():
            check(wire, f"parts[{i}].inputs.{name}")
    for name, wire in c.outputs.items():
        check(wire, f"outputs.{name}")
        if wire.kind != "part":
            raise ArtifactError(where, f"field 'outputs.{name}' must come from a part output")
    missing = [o for o in c.spec.output_names if o not in c.outputs]
    if missing:
        raise ArtifactError(where, f"field 'outputs' lacks the model output {missing[0]!r}")
    read = {w.name for p in c.parts for w in p.inputs.values() if w.kind == "input"}
    unread = sorted(inputs - read)
    if unread:
        raise ArtifactError(where, f"field 'parts': no part reads model input {unread[0]!r}")
    flagged = {w.name for p in c.parts for w in p.inputs.values() if w.kind == "present"}
    for i, part in enumerate(c.parts):
        if part.absent is None:
            continue
        if part.absent.kind == "mask" and part.name not in flagged:
            raise ArtifactError(
                where,
                f"field 'parts[{i}].absent': part {part.name!r} is masked when absent but no part "
                f'reads its flag ({{"present": "{part.name}"}})',
            )
        if part.absent.kind == "constant" and sorted(part.absent.values) != sorted(part.outputs):
            raise ArtifactError(
                where,
                f"field 'parts[{i}].absent.values' must hold exactly the outputs {', '.join(part.outputs)}",
            )
    part_levels(c.parts, where)


def part_levels(parts: list[Part], where: str) -> list[list[str]]:
    """Kahn's algorithm over part -> part wires; a cycle is an error naming its parts."""
    needs = {p.name: {w.name for w in p.inputs.values() if w.kind == "part"} for p in parts}
    levels: list[list[str]] = []
    done: set[str] = set()
    while len(done) < len(needs):
        ready = [n for n, deps in needs.items() if n not in done and deps <= done]
        if not ready:
            stuck = sorted(n for n in needs if n not in done)
            raise ArtifactError(
                where, f"field 'parts': the wiring has a cycle through part(s) {', '.join(stuck)}"
            )
        levels.append(ready)
        done.update(ready)
    return levels
