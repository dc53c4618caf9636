"""Run the whole reliability suite (tests/reliability, full size) and write RELIABILITY.md.

    python tools/reliability_report.py                 # the full part: a few minutes on 2 cores
    python tools/reliability_report.py --fast          # the part every `pytest` run does (no file)

The full part sets MMEXPORT_RELIABILITY=full: hundreds of hypothesis examples per property, every
kill point plus random delays per writing command, a 10,000-call soak per model. The tests count
what each case ended in (MMEXPORT_RELIABILITY_STATS); this script prints those counts, the memory
figure and the machine, and writes the same into RELIABILITY.md. The exit status is pytest's: a
failing case is reported in the file, not hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "RELIABILITY.md"
COMMAND = "python tools/reliability_report.py"
LIBRARIES = ("numpy", "onnx", "onnxruntime", "torch", "hypothesis")

# Areas by the first part of a recorded area name, in the order of the report.
SECTIONS = [
    ("feeds", "Feeds fuzzed into `Session.run` (hypothesis)", "cases"),
    (
        "manifest mutations",
        "Manifests mutated (hypothesis: values replaced or deleted, bytes damaged)",
        "cases",
    ),
    ("damaged onnx", "Damaged ONNX files", "faults"),
    ("bit flips", "One flipped bit anywhere in an ONNX file (hypothesis)", "faults"),
    ("damaged manifest", "Damaged manifests", "faults"),
    ("external data", "Damaged external data files", "faults"),
    ("damaged engine", "Damaged TensorRT engines (fake TensorRT)", "faults"),
    ("damaged engine manifest", "Damaged engine manifests (fake TensorRT)", "faults"),
    ("damaged onnx on the command line", "Damaged ONNX files on the command line", "faults"),
    ("array files", "Array files whose header lies about their size", "faults"),
    ("SIGKILL", "Writing commands killed (SIGKILL)", "faults"),
    ("SIGINT", "Writing commands interrupted (SIGINT, Ctrl-C)", "faults"),
    ("manifest fields retyped", "Manifest fields given another type, under `inspect` (hypothesis)", "cases"),
    ("edited spec", "Specs edited in a manifest, loaded by every stage", "faults"),
    ("full disk", "A full disk (ENOSPC) while writing", "faults"),
    ("file-size limit", "A file-size limit (RLIMIT_FSIZE, EFBIG) while writing", "faults"),
    ("deleted working folder", "A deleted working folder", "faults"),
    ("Ctrl-C while starting", "Ctrl-C while the command line starts", "faults"),
    ("paths that are not UTF-8", "Paths that are not UTF-8", "faults"),
    ("token ids", "Token ids in text (hypothesis)", "cases"),
    ("threads", "One Session from 8 threads", "cases"),
    ("soak", "Soak", "cases"),
]


def run_suite(full: bool, folder: Path) -> tuple[int, Path, Path, float]:
    stats, junit = folder / "stats.json", folder / "junit.xml"
    env = dict(
        os.environ, MMEXPORT_RELIABILITY="full" if full else "fast", MMEXPORT_RELIABILITY_STATS=str(stats)
    )
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "tests/reliability",
        "-q",
        # one process: the case counts are gathered in one stats file, which xdist workers would overwrite
        "-n",
        "0",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
    ]
    print(
        f"running: MMEXPORT_RELIABILITY={env['MMEXPORT_RELIABILITY']} {' '.join(argv[1:])}", file=sys.stderr
    )
    started = time.monotonic()
    code = subprocess.call(argv, cwd=ROOT, env=env, stdout=sys.stderr)
    return code, stats, junit, time.monotonic() - started


def read_junit(path: Path) -> dict[str, Any]:
    """Counts of passed / failed / xfailed / skipped tests, and the known gaps (xfail reasons)."""
    counts: dict[str, int] = defaultdict(int)
    gaps, failures = [], []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}.py::{case.get('name')}"
        skipped = case.find("skipped")
        failed = case.find("failure") if case.find("failure") is not None else case.find("error")
        if failed is not None:
            counts["failed"] += 1
            failures.append(f"{name}: {(failed.get('message') or '').splitlines()[0][:200]}")
        elif skipped is not None and skipped.get("type") == "pytest.xfail":
            counts["xfailed"] += 1
            gaps.append(f"{name}: {skipped.get('message', '').removeprefix('reason: ')}")
        elif skipped is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return {"counts": dict(counts), "gaps": gaps, "failures": failures}


def machine() -> dict[str, Any]:
    from mmexport.bench.environment import host_info
    from mmexport.core.manifest import package_versions

    host = host_info(Path("/"))
    memory = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {**host, "memory_gib": memory, "libraries": package_versions(*LIBRARIES)}


def group(outcomes: list[dict[str, Any]]) -> list[tuple[str, str, str, list[tuple[str, str, int]]]]:
    """Outcome rows by report section: (key, title, kind, [(area, outcome, count)])."""
    rows: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for row in outcomes:
        area = row["area"]
        key = next((k for k, _, _ in sorted(SECTIONS, key=lambda s: -len(s[0])) if area.startswith(k)), area)
        rows[key].append((area, row["outcome"], row["count"]))
    known = [(k, t, kind, rows.pop(k)) for k, t, kind in SECTIONS if k in rows]
    return known + [(k, k, "cases", r) for k, r in rows.items()]


def render(
    results: dict[str, Any], stats: dict[str, Any], host: dict[str, Any], seconds: float, full: bool
) -> str:
    counts = results["counts"]
    grouped = group(stats.get("outcomes", []))
    cases = sum(n for _, _, kind, rows in grouped if kind == "cases" for _, _, n in rows)
    faults = sum(n for _, _, kind, rows in grouped if kind == "faults" for _, _, n in rows)
    libs = ", ".join(f"{k} {v}" for k, v in host["libraries"].items() if v)
    lines = [
        "# Reliability",
        "",
        "How mmexport behaves when its inputs are wrong, its files damaged, its runs killed, and its",
        "runtime called from many threads for a long time. Everything below was measured by one",
        f"command, which reruns the whole suite and rewrites this file: `{COMMAND}`.",
        "A fast part of the same tests (a few examples per property, one kill point per command)",
        "runs in every `pytest` run; `pytest -m reliability` selects the suite.",
        "",
        "## Last run",
        "",
        f"- command: `{COMMAND}`{'' if full else ' --fast'} ({'full' if full else 'fast'} part)",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, {seconds:.0f} s",
        f"- machine: {host['cpu']}, {host['cores']} cores ({host['cores_usable']} usable), "
        f"{host['memory_gib']} GiB, {host['os']} {host['machine']}, Python {host['python']}",
        f"- libraries: {libs}",
        f"- tests: {counts.get('passed', 0)} passed, {counts.get('failed', 0)} failed, "
        f"{counts.get('xfailed', 0)} known gaps (strict xfail), {counts.get('skipped', 0)} skipped",
        f"- cases tried: {cases}; faults injected: {faults}",
    ]
    for name, value in sorted(stats.get("figures", {}).items()):
        if name.startswith("soak/"):
            lines.append(
                f"- memory ({name.removeprefix('soak/')}): RSS grew {value['growth_kib']} KiB over "
                f"{value['calls']:,} calls after a warm-up (from {value['rss_before_mib']} MiB; "
                f"bound {value['bound_mib']} MiB)"
            )
    if results["failures"]:
        lines += ["", "**Failures:**", ""] + [f"- {f}" for f in results["failures"]]
    lines += ["", "## Outcomes", ""]
    for _, title, _, rows in grouped:
        lines += [f"### {title}", "", "| area | outcome | count |", "|---|---|---:|"]
        lines += [f"| {area} | {outcome} | {count} |" for area, outcome, count in rows]
        lines.append("")
    lines += ["## Known gaps", ""]
    lines += [f"- {gap}" for gap in results["gaps"]] or ["- none"]
    lines += ["", *POLICY]
    return "\n".join(lines) + "\n"


POLICY = """## What is checked, and what mmexport does

- **Feeds** (`tests/reliability/test_feeds.py`): every case ends in the result onnxruntime gives
  when called directly on the same file, or in an `InputError` whose `input` is one that the
  feed breaks (checked by an oracle written from the documented rules, not from the validator).
  Cases: dtypes (all numpy kinds), ranks, fixed axes, every named dim at and around `[min, max]`,
  zero, far off and huge (up to 10^12, as broadcast views that cost no memory), shared dims that
  disagree, Fortran-ordered, strided, reversed, broadcast, read-only, unaligned, masked and
  `np.matrix` arrays, lists, tuples, `None`, scalars, 0-d arrays, strings and torch tensors as
  values or as the whole feed, dict subclasses, `MappingProxyType`, custom mappings, missing and
  extra keys (also non-string ones). Targets: the tiny model with and without a manifest (without
  one, dims are unbounded: only this machine's memory bounds a feed) and, in the full part, the
  default built-in model.
- **NaN and inf are passed through**: the runtime does not read values (that would cost a pass
  over every input on every call), so a NaN reaches the model and shows in its outputs, exactly as
  with onnxruntime; `mmexport run` flags non-finite outputs. Integer values outside a spec's
  `range` are not checked either: onnxruntime refuses out-of-bounds gather indices
  (`BackendError`); what a TensorRT engine does with them is not tested here (no real TensorRT),
  so check token ids before feeding an engine.
- **Huge feeds are refused before anything is allocated**: shapes are checked before a cast, and
  a feed larger than physical memory is refused even where the spec has no ranges.
- **sha256**: by default `Session` trusts the manifest and does not hash the file (it would read
  all of it on every load), so a flipped bit in a weight can load and run. `Session(...,
  verify_sha256=True)` hashes the artifact and its external data file and refuses any change;
  `fp16`, `calibrate` and `build` hash their input anyway and always refuse a mismatch.
- **Manifests are untrusted input**: at most 16 MiB, nesting at most 32 deep, strings at most
  1 Mi characters, integers within 64 bits, no NaN, no duplicate keys, a type for every
  top-level field, no unknown keys, `sha256` as 64 hex digits, `artifact` a bare file name; a
  manifest from a newer mmexport asks for an upgrade. Each failure is one `ArtifactError`.
- **Interrupted runs** (`tests/reliability/test_interrupts.py`): `to-onnx`, `fp16`, `calibrate`,
  `build` (with the fake TensorRT, made importable in the child by a `PYTHONPATH` shim) and
  `bundle` run as real child processes and are killed once the staging folder exists, once the
  artifact is staged, between the artifact's move and its manifest's, and at random delays.
  Afterwards the output is the previous artifact with its manifest, the new one complete, or an
  artifact without a manifest (which nothing accepts as valid); a rerun succeeds and removes
  what the killed run left. Files are fsync'ed before they are renamed and folders after, so a
  power cut cannot leave a renamed file whose bytes never reached the disk (tested in-process,
  `test_atomic_writes.py`; a real power cut is not simulated).
- **Ctrl-C**: exit 130 and nothing written while the artifact is made or staged. During the final
  moves (artifact, then manifest: milliseconds) Ctrl-C is held back until both are in place; the
  command then exits 130 with the new artifact complete. A Ctrl-C while the command line starts
  (numpy, click, onnx or torch still importing) is one line and exit 130
  (`test_environment_failures.py`).
- **The machine refuses** (`test_environment_failures.py`): a full disk (ENOSPC, injected into
  `onnx.save`, the fsync before the move and the manifest's write of `fp16` and `calibrate`, and
  into `bundle`'s archive) and a file-size limit (a real `RLIMIT_FSIZE` in a child process) are one
  `error:` line naming the output, with the earlier output untouched and no temporary file left;
  a deleted working folder is one line before torch loads; a `MemoryError` is one line.
- **Edited manifests** (`test_edited_manifests.py`): every field of a real manifest given another
  type is read or refused by `inspect` in one line; a spec edited to disagree with the graph is
  refused by `fp16`, `calibrate`, `accuracy` and `run` with `Session`'s own message, a label list
  of another length too.
- **Threads and soak** (`test_concurrency.py`): one `Session` called from 8 threads at once
  (a barrier), with invalid feeds and casts mixed in, gives exactly the serial outputs and
  errors; 10,000 calls after a warm-up must grow RSS by less than the stated bound.
- **Untrusted files and code** (`test_untrusted_input.py`, `test_user_code.py`): a scan of
  `src/` refuses pickle-family imports, `eval`/`exec`, `torch.load` without `weights_only=True`,
  `np.load` without `allow_pickle=False`, `yaml.load`, `extractall` without a filter and
  `shell=True`. `file.py:factory` references run the user's code (said in `to-onnx --help`);
  user code that calls `sys.exit` is an error, not mmexport's exit status. Bundles: path
  traversal, links and oversized members in `unbundle` are tested by
  `tests/deploy/test_archive.py` (`test_malicious_member_is_refused_and_nothing_is_written`,
  `test_accepted_names_stay_inside_the_folder`, `test_huge_header_record_is_refused_unread`,
  `test_data_filter_is_a_second_line_of_defence`).
- **Not covered**: a real power cut or a real full disk (faults are injected, or a file-size
  limit set); real TensorRT and CUDA (the engine cases use
  the fake `tensorrt` of `tests/trt/fakes`); `mmexport triton` and split exports.""".splitlines()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fast", action="store_true", help="the fast part only; RELIABILITY.md is not written"
    )
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT, help="default: RELIABILITY.md")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    with tempfile.TemporaryDirectory() as tmp:
        code, stats_file, junit, seconds = run_suite(not args.fast, Path(tmp))
        if not junit.exists():
            print("pytest wrote no results", file=sys.stderr)
            return code or 1
        results = read_junit(junit)
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    text = render(results, stats, machine(), seconds, not args.fast)
    summary = text.split("## Outcomes")[0].split("## Last run")[1].strip()
    print(summary)
    for _, title, _, rows in group(stats.get("outcomes", [])):
        print(f"\n{title}")
        for area, outcome, count in rows:
            print(f"  {count:>6}  {area}: {outcome}")
    if not args.fast:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
