"""Deployment targets as data: what each kind of device can build and run.

Jetsons share memory between CPU and GPU, so their workspace caps are small (a build that takes
all of it gets killed). Engines are built on the device itself; ``tensorrt`` lists the versions
its JetPack releases ship, and ``generations`` the TensorRT major versions it can have. Values
marked *unverified* in the comments are from release notes, not from a device.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmexport.core.errors import MmexportError

GIB = 1 << 30


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    platform: str  # "linux-x86_64" / "linux-sbsa" for servers, "linux-aarch64-jetson" for Jetsons
    workspace_bytes: int | None  # builder workspace cap (None: TensorRT's default, the GPU's memory)
    opt_level: int  # builder optimization level 0-5 (TensorRT's default is 3)
    dla_cores: int  # 0: no DLA
    generations: tuple[int, ...]  # TensorRT major versions this target can have
    tensorrt: tuple[str, ...]  # TensorRT versions its software releases ship (first: the default)
    compute_capability: str | None  # None: any

    @property
    def is_jetson(self) -> bool:
        return self.platform.endswith("jetson")


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            name="gpu",
            description="any x86_64 or SBSA (Grace) server or workstation GPU",
            platform="linux-x86_64",
            workspace_bytes=None,
            opt_level=3,
            dla_cores=0,
            generations=(10, 11),
            tensorrt=("11.4.0", "10.13.3"),
            compute_capability=None,
        ),
        Target(
            name="jetson-orin",
            description="Jetson AGX Orin / Orin NX (JetPack 6: TensorRT 10.3; 2 DLA cores)",
            platform="linux-aarch64-jetson",
            workspace_bytes=2 * GIB,
            opt_level=3,
            dla_cores=2,
            generations=(10, 11),  # 11 only from TensorRT 11.4.1 on JetPack 7.2.2+ (unverified)
            tensorrt=("10.3.0",),
            compute_capability="8.7",
        ),
        Target(
            name="jetson-orin-nano",
            description="Jetson Orin Nano (JetPack 6: TensorRT 10.3; no DLA; 4-8 GB shared memory)",
            platform="linux-aarch64-jetson",
            workspace_bytes=1 * GIB,
            opt_level=3,
            dla_cores=0,
            generations=(10, 11),
            tensorrt=("10.3.0",),
            compute_capability="8.7",
        ),
        Target(
            name="jetson-thor",
            description="Jetson Thor (JetPack 7: TensorRT 10.13+; no DLA)",
            platform="linux-aarch64-jetson",
            workspace_bytes=4 * GIB,
            opt_level=3,
            dla_cores=0,
            generations=(10, 11),
            tensorrt=("10.13.3",),  # JetPack 7.0 (unverified)
            compute_capability="11.0",  # sm_110 under CUDA 13 (sm_101 before; unverified)
        ),
    )
}
DEFAULT_TARGET = "gpu"


def target_names() -> list[str]:
    return list(TARGETS)


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise MmexportError(f"unknown target {name!r}; known: {', '.join(TARGETS)}") from None
