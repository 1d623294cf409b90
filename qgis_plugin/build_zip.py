"""Build the QGIS plugin zip (``make qgis-plugin``): dist/stgeo_kd_plugin.zip holding the
folder stgeo_kd_plugin/, with metadata.txt's version set to stgeo_kd's. Install it with
QGIS's Plugins > Manage and Install Plugins > Install from ZIP."""

from __future__ import annotations

import argparse
import configparser
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PLUGIN = HERE / "stgeo_kd_plugin"
REQUIRED = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository")


def package_version() -> str:
    text = (ROOT / "stgeo_kd" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if not match:
        sys.exit("build_zip: no __version__ in stgeo_kd/__init__.py")
    return match.group(1)


def build(out: Path) -> Path:
    version = package_version()
    metadata = (PLUGIN / "metadata.txt").read_text(encoding="utf-8")
    metadata = re.sub(r"^version=.*$", f"version={version}", metadata, flags=re.MULTILINE)
    parser = configparser.ConfigParser()
    parser.read_string(metadata)
    missing = [key for key in REQUIRED if not parser.get("general", key, fallback="").strip()]
    if missing or parser.get("general", "hasProcessingProvider", fallback="") != "yes":
        sys.exit(f"build_zip: metadata.txt lacks {missing or 'hasProcessingProvider=yes'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(PLUGIN.rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            name = f"{PLUGIN.name}/{path.relative_to(PLUGIN).as_posix()}"
            if path.name == "metadata.txt":
                zf.writestr(name, metadata)
            else:
                zf.write(path, name)
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "stgeo_kd_plugin.zip")
    args = parser.parse_args(argv)
    path = build(args.out)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    print(f"{path}: {len(names)} files ({', '.join(names)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
