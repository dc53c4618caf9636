"""Write ``cuda-<version>.txt``: the names of the real ``cuda.bindings.runtime``, read from its source.

    python -m pip download --no-deps --only-binary=:all: "cuda-bindings==12.9.*" -d /tmp/cudab
    python tests/trt/fakes/real_names/cuda_names.py /tmp/cudab/cuda_bindings-12.9.10-*.whl

One line per module-level function (``cudaMemcpyAsync``) and per class member
(``cudaError_t.cudaSuccess``, ``cudaDeviceProp.major``); the bindings' ``runtime.pyx`` in the
wheel is the source, so no GPU or installation is needed.
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

_CLASS = re.compile(r"^(?:cdef )?class (\w+)\b")
_FUNCTION = re.compile(r"^def (\w+)\(")
_MEMBER = re.compile(r"^    (?:(\w+) = |def (\w+)\()")


def names(source: str) -> list[str]:
    found: set[str] = set()
    owner: str | None = None
    for line in source.splitlines():
        if match := _CLASS.match(line):
            owner = match.group(1)
            found.add(owner)
        elif match := _FUNCTION.match(line):
            owner = None
            found.add(match.group(1))
        elif owner is not None and (match := _MEMBER.match(line)):
            member = match.group(1) or match.group(2)
            if not member.startswith("_"):
                found.add(f"{owner}.{member}")
    return sorted(found)


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read("cuda/bindings/runtime.pyx").decode()
    version = Path(wheel).name.split("-")[1]
    out = Path(__file__).with_name(f"cuda-{version}.txt")
    header = f"# python tests/trt/fakes/real_names/cuda_names.py {Path(wheel).name}\n"
    out.write_text(header + "\n".join(names(source)) + "\n")
    print(out)


if __name__ == "__main__":
    main(sys.argv[1])
