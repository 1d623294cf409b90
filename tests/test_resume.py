"""Crash safety: a run killed with SIGKILL mid-training resumes with --resume from its last
checkpoint and ends with the same metrics as an uninterrupted run (same seed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

SETTINGS = [
    "train.epochs=3", "train.student_epochs=4", "train.batches_per_epoch=6", "teacher.params.channels=8",
    "student.params.hidden=16", "train.progress=false", "train.latency_repeats=2", "train.max_minutes=null",
    "outputs.map=false", "outputs.onnx=false", "outputs.gpkg=false", "train.num_threads=1",
]


def _cmd(out, *extra):
    cmd = [sys.executable, "-m", "stgeo_kd.cli", "run", str(ROOT / "examples" / "sample_city.yaml"), "--out", str(out)]
    for s in SETTINGS:
        cmd += ["--set", s]
    return cmd + list(extra)


def _metrics(out):
    rep = json.loads((out / "report.json").read_text())
    return {role: rep["models"][role]["metrics"] for role in ("teacher", "student", "student_scratch")}


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    full = tmp_path / "full"
    proc = subprocess.run(_cmd(full), check=False, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    assert not (full / "checkpoints").exists()  # cleared once the run is complete

    cut = tmp_path / "cut"
    victim = subprocess.Popen(_cmd(cut), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    # kill once the teacher is finished and the student has written its first epoch checkpoint
    deadline = time.time() + 500
    while time.time() < deadline and not (cut / "checkpoints" / "student.ckpt").exists():
        time.sleep(0.05)
    assert (cut / "checkpoints" / "student.ckpt").exists(), "the run never reached the student"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert not (cut / "report.json").exists()
    ckpts = sorted(p.name for p in (cut / "checkpoints").iterdir())
    assert "teacher.done.pt" in ckpts and "student.done.pt" not in ckpts

    proc = subprocess.run(_cmd(cut, "--resume"), check=False, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    a, b = _metrics(full), _metrics(cut)
    for role in a:
        for key in a[role]:
            for metric in ("mae", "rmse", "mape"):
                assert b[role][key][metric] == pytest.approx(a[role][key][metric], abs=1e-6), (role, key, metric)


def test_resume_refuses_checkpoints_of_another_config(tmp_path):
    from stgeo_kd.cli import main

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    sets = []
    for s in SETTINGS:
        sets += ["--set", s]
    code = main(["run", str(ROOT / "examples" / "sample_city.yaml"), "--out", str(tmp_path), "--resume", *sets])
    assert code == 2
