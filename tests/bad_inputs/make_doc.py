"""Generate the catalogue tables and figures of docs/reliability.md from the catalogue itself.

Runs every case of ``catalogue.py`` through the CLI (errors) or the readers (warnings), records
the message a user sees, runs the fuzz tests to count their cases, and prints Markdown::

    .venv/bin/python tests/bad_inputs/make_doc.py              # print the generated section
    .venv/bin/python tests/bad_inputs/make_doc.py --write      # replace it in docs/reliability.md
    .venv/bin/python tests/bad_inputs/make_doc.py --no-fuzz    # skip the fuzz run (about 30 s)

The section sits between ``<!-- generated:start -->`` and ``<!-- generated:end -->``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE.parent)]

from bad_inputs.catalogue import ADVICE_WORDS, CASES, Workspace

DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- generated:start -->", "<!-- generated:end -->"
AREAS = {
    "roads": "Roads",
    "sensors": "Sensors",
    "readings": "Readings",
    "graph": "Graph",
    "config": "Config",
    "rasters": "Raster stacks",
    "output": "Output folder",
}


def _clean(text: str, workspace: Path) -> str:
    text = " ".join(text.split())
    for folder in (workspace.resolve(), workspace):
        text = text.replace(str(folder) + "/", "").replace(str(folder), "the case folder")
    return text.replace(str(Path.cwd()), "<cwd>")


def _run_error(case) -> tuple[str, bool]:
    """The CLI message for an error case, and whether it is a clear error (exit 2, words, advice)."""
    from stgeo_kd.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "work")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = case.build(ws)
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    code = main(ws.argv(run))
            except Exception:  # noqa: BLE001 -- a crash is what this counts
                return _clean(traceback.format_exc().splitlines()[-1], ws.root), False
        message = _clean(err.getvalue(), ws.root).removeprefix("stgeo-kd: error: ")
        low = message.lower()
        clear = (
            code == 2
            and "Traceback" not in err.getvalue()
            and all(w.lower() in low for w in case.expect)
            and any(w in low for w in ADVICE_WORDS)
            and not (ws.out.exists() and any(ws.out.iterdir()))
        )
        return message, clear


def _run_warning(case) -> tuple[str, bool]:
    from stgeo_kd.config import load_config
    from stgeo_kd.ingest.build import load_sensor_graph

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "work")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = case.build(ws)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                cfg = load_config(run.config, list(run.sets))
                if case.area == "rasters":
                    from stgeo_kd.ingest.rasters import check_frames, load_raster_stack

                    check_frames(load_raster_stack(cfg))
                else:
                    load_sensor_graph(cfg)
            except Exception:  # noqa: BLE001
                return _clean(traceback.format_exc().splitlines()[-1], ws.root), False
        messages = [_clean(str(w.message), ws.root) for w in caught]
        hit = [m for m in messages if all(w.lower() in m.lower() for w in case.expect)]
        return (hit[0] if hit else "; ".join(messages)), bool(hit)


def _code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def _fuzz_counts() -> tuple[int, int, dict[str, int], float]:
    from bad_inputs import test_fuzz

    t0 = time.perf_counter()
    for name in dir(test_fuzz):
        fn = getattr(test_fuzz, name)
        if name.startswith("test_") and hasattr(fn, "hypothesis"):
            fn()
    counts = dict(test_fuzz.FUZZ_COUNTS)
    return sum(counts.values()), sum(test_fuzz.FUZZ_ACCEPTED.values()), counts, time.perf_counter() - t0


def generate(fuzz: bool = True) -> str:
    from bad_inputs.test_security import XSS_PAYLOADS

    lines: list[str] = []
    results = {}
    for case in CASES:
        results[case.id] = _run_error(case) if case.kind == "error" else _run_warning(case)
    errors = [c for c in CASES if c.kind == "error"]
    repaired = [c for c in CASES if c.kind == "warning"]
    unclear = [c.id for c in errors if not results[c.id][1]]
    unrepaired = [c.id for c in repaired if not results[c.id][1]]

    lines.append("### Figures")
    lines.append("")
    lines.append("| figure | value |")
    lines.append("| --- | --- |")
    lines.append(f"| malformed inputs tried (catalogue, `pytest tests/bad_inputs`) | {len(errors)} |")
    lines.append(f"| irregular but recoverable inputs tried (repaired with a warning) | {len(repaired)} |")
    lines.append(f"| crashes or errors without a clear message | {len(unclear)}{' (' + ', '.join(unclear) + ')' if unclear else ''} |")
    lines.append(f"| recoverable inputs not repaired with a warning | {len(unrepaired)} |")
    if fuzz:
        total, accepted, counts, seconds = _fuzz_counts()
        detail = ", ".join(f"{k} {v}" for k, v in counts.items())
        lines.append(
            f"| fuzz cases run (hypothesis, fixed seed; {detail}) | {total:,}, of which {accepted:,} accepted and "
            f"checked, the rest refused with StgeoError; other exceptions: 0 ({seconds:.0f} s here) |"
        )
    lines.append(
        f"| XSS payloads tried | {len(XSS_PAYLOADS)}, each in sensor ids, sensor names, column (model) names, "
        "units, the map title and road names; static check of the HTML + headless Chromium, twice (page as "
        "saved, and with a Leaflet stand-in that renders every string with innerHTML): none ran |"
    )
    lines.append(
        "| resume test result | `tests/test_resume.py`: a run killed with SIGKILL during the student's training and "
        "continued with `--resume` ends with the same test metrics (MAE, RMSE, MAPE at every horizon, all three "
        "models) as an uninterrupted run, to 1e-6 |"
    )
    lines.append("")
    for area, title in AREAS.items():
        lines.append(f"### {title}")
        lines.append("")
        lines.append("| case | malformed input | message the user sees (`stgeo-kd run`, exit code 2) |")
        lines.append("| --- | --- | --- |")
        for case in errors:
            if case.area == area:
                lines.append(f"| `{case.id}` | {case.what} | {_code(results[case.id][0])} |")
        lines.append("")
    lines.append("### Repaired with a warning")
    lines.append("")
    lines.append("| case | irregular input | warning (the run goes on) |")
    lines.append("| --- | --- | --- |")
    for case in repaired:
        lines.append(f"| `{case.id}` | {case.what} | {_code(results[case.id][0])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"replace the generated section of {DOC}")
    parser.add_argument("--no-fuzz", action="store_true", help="do not run the fuzz tests (no fuzz figure)")
    args = parser.parse_args(argv)
    section = generate(fuzz=not args.no_fuzz)
    if not args.write:
        print(section)
        return 0
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{section}{END}{tail}", encoding="utf-8")
    print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
