"""Command line: ``stgeo-kd run CONFIG.yaml --out DIR [--set key.path=value ...]``."""

from __future__ import annotations

import argparse
import sys
import textwrap
import warnings
from pathlib import Path

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stgeo-kd",
        description="Distil spatio-temporal geospatial models into small, fast students.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the whole pipeline from a YAML config")
    r.add_argument("config", help="YAML config file (see examples/)")
    r.add_argument("--out", required=True, help="output folder for report.json, predictions.gpkg, map.html, student.onnx")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in the same --out folder from its last checkpoint")
    sub.add_parser("version", help="print the version")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        import stgeo_kd

        print(stgeo_kd.__version__)
        return 0
    from stgeo_kd.errors import StgeoError

    overrides = list(args.overrides)
    if args.quiet:
        overrides.append("train.progress=false")
    out = Path(args.out)
    created = _first_missing_folder(out)
    formatwarning = warnings.formatwarning
    try:
        _check_config_file(Path(args.config))
        from stgeo_kd.pipeline import run

        # user-facing warnings (repaired data, isolated sensors) as one plain line each
        warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
        result = run(args.config, out_dir=args.out, overrides=overrides, resume=args.resume)
    except StgeoError as exc:
        _remove_empty_folders(out, created)
        # never break inside a word: paths and keys must stay whole to be copied
        message = textwrap.fill(
            str(exc), width=100, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False
        )
        print("stgeo-kd: error: " + message, file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("stgeo-kd: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning  # main() may run inside a larger program (or a test)
    rep = result.report
    arts = result.artifacts
    print(_summary(rep))
    for key in ("map", "report", "gpkg", "geotiff", "onnx"):
        if key in arts:
            print(f"{key:>7}: {Path(arts[key]).resolve()}")
    return 0


def _check_config_file(path: Path) -> None:
    """The CONFIG argument: a file that exists and holds more than comments."""
    from stgeo_kd.errors import StgeoError

    hint = "Give the path of a YAML config; examples/sample_city.yaml is a complete one to copy."
    if not path.exists():
        raise StgeoError(f"Config file {path} not found. {hint}")
    if not path.is_file():
        raise StgeoError(f"Config file {path} is a folder, not a file. {hint}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise StgeoError(f"Config file {path} is not UTF-8 text. Save it as UTF-8; {hint[0].lower()}{hint[1:]}") from None
    except OSError as exc:
        raise StgeoError(f"Config file {path} cannot be read ({exc.strerror}). Check its permissions.") from None
    if all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
        raise StgeoError(f"Config file {path} is empty (no keys, at most comments). {hint}")
    import yaml

    try:
        yaml.safe_load(text)  # the safe loader: tags such as !!python/object are refused, never run
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise StgeoError(
            f"Config file {path} is not valid YAML{where}: {problem}. Fix the file there (keys are written "
            "'key: value', nested keys indented by spaces); tags such as !!python/... are refused, configs are "
            "read with a safe loader that never runs code."
        ) from None


def _first_missing_folder(out: Path) -> Path | None:
    """The top-most folder of ``out`` that does not exist yet (what a run would create), or None."""
    created = None
    for folder in (out, *out.parents):
        if folder.exists():
            break
        created = folder
    return created


def _remove_empty_folders(out: Path, created: Path | None) -> None:
    """After a failed run, remove the folders it created for ``out`` if they are still empty."""
    if created is None:
        return
    for folder in (out, *out.parents):
        try:
            folder.rmdir()  # only empty folders go
        except OSError:
            return
        if folder == created:
            return


def _summary(rep: dict) -> str:
    """A small text table of MAE (or macro-F1) per horizon and cost for the models and baselines."""
    if rep["task"].get("data_kind") == "patches":  # land cover: a class per pixel, no horizons
        from stgeo_kd.landcover.pipeline import summary_text as patches_summary

        return patches_summary(rep)
    if rep["task"]["kind"] == "regress":  # data.kind: points, no horizons
        from stgeo_kd.spatial.pipeline import summary_text

        return summary_text(rep)
    hs = rep["task"]["horizons"]
    metric = "macro_f1" if rep["task"]["kind"] == "classify" else "mae"
    what = "macro-F1" if metric == "macro_f1" else f"MAE ({rep['task'].get('units') or 'data units'})"
    lines = [f"test {what} by steps ahead:"]
    lines.append(f"{'model':<20}" + "".join(f"{'h' + str(k):>8}" for k in hs) + f"{'params':>10}{'ms@b1':>9}")
    m = rep["models"]
    roles = [r for r in m if r.startswith("teacher")] + ["student", "student_scratch"]
    for role in roles:
        e = m[role]
        lines.append(
            f"{role:<20}" + "".join(f"{e['metrics'][f'h{k}'][metric]:>8.3f}" for k in hs)
            + f"{e['params']:>10,}{e['latency_ms_batch1']:>9.2f}"
        )
    for name, e in m["baselines"].items():
        lines.append(f"{name:<20}" + "".join(f"{e['metrics'][f'h{k}'][metric]:>8.3f}" for k in hs))
    c = rep["comparison"]
    lines.append(
        f"student is {c['latency_speedup_student_vs_teacher']:.1f}x faster than the teacher at batch 1 "
        f"with {c['param_ratio_teacher_to_student']:.1f}x fewer parameters"
    )
    if rep["dataset"].get("kind") == "raster_stack":
        lines.append(f"(ms@b1: one {rep['models']['student']['cost_tile']} tile; the student needs "
                     f"{c['mac_ratio_teacher_to_student']:.1f}x fewer MACs than the teacher)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
