"""The authors' code, timed through the gpu-kit's harness (``--reference DIR``, a copy of the kit).

Their ``distill.py`` (STM) runs unmodified through ``harness/run_ref.py`` on random-walk buffers
from the kit's ``make_buffers.py`` (FAKE128: 9 classes of random 128 px images; DIGITS: 10 classes
at 32 px), as ``ref_sxs.sh`` does; seconds per iteration = the median interval between its logged
iterations. Their ``buffer.py`` trains one expert on FAKE128 (``FAKE128_N`` images per class);
images/s = images per epoch / the median interval between its "Epoch:" lines.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path


def _env(kit: Path, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(kit / "stubs")] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(WANDB_MODE="disabled", PYTHONUNBUFFERED="1", **(extra or {}))
    return env


def ensure_buffers(kit: Path, work: Path, timeout: float) -> None:
    if (work / "runs/sxs128/buffers/FAKE128/ConvNet/replay_buffer_0.pt").exists():
        return
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(kit / "make_buffers.py")], cwd=work, env=_env(kit), check=True,
                   capture_output=True, timeout=timeout)


def ref_distill(kit: Path, work: Path, size: int, ipc: int, steps: int, iterations: int, timeout: float) -> dict:
    """The authors' STM seconds per iteration at (size, ipc, N): median of the logged intervals."""
    kit, work = kit.resolve(), work.resolve()
    ensure_buffers(kit, work, timeout)
    ds, lrt, lri, run = ("FAKE128", "0.0001", "10000", "sxs128") if size == 128 else ("DIGITS", "0.01", "100", "sxs32")
    tag = f"ref_s{size}_ipc{ipc}_n{steps}"
    (work / "logs").mkdir(exist_ok=True)
    out_json = work / "logs" / f"{tag}.json"
    cmd = [sys.executable, str(kit / "harness/run_ref.py"), "--repo", str(kit / "reference-stm"), "--script", "distill.py",
           "--workdir", f"runs/{run}", "--out", str(out_json), "--set", f"Iteration={iterations + 1}", "--",
           f"--dataset={ds}", "--model=ConvNet", f"--ipc={ipc}", f"--syn_steps={steps}", f"--lr_img={lri}",
           f"--lr_teacher={lrt}", "--max_start_epoch=2", "--eval_it=100000", "--num_eval=1", "--epoch_eval_train=1",
           "--pix_init=real", "--dsa=True", "--buffer_path=buffers", "--data_path=data", "--expert_epochs=1",
           "--lr_lr=0.01", "--prev_iter=1", f"--wandb_name={tag}"]
    proc = subprocess.run(cmd, cwd=work, env=_env(kit), capture_output=True, text=True, timeout=timeout)
    (work / "logs" / f"{tag}.out").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not out_json.exists():
        raise RuntimeError(f"reference distill.py failed (rc {proc.returncode}): {(proc.stdout + proc.stderr)[-600:]}")
    events = json.loads(out_json.read_text())["events"]
    ts = [e["t"] for e in events if any(k.startswith("Grand_Loss") for k in e["keys"])]
    dt = [b - a for a, b in zip(ts, ts[1:])]
    if not dt:
        raise RuntimeError(f"reference distill.py logged {len(ts)} iterations; need >= 2")
    return {"sec": statistics.median(dt), "intervals": [round(x, 3) for x in dt]}


_EPOCH = re.compile(r"^\[\+([0-9.]+)\] Itr: \d+\tEpoch: (\d+)")


def ref_expert(kit: Path, work: Path, per_class: int, epochs: int, timeout: float) -> dict:
    """The authors' buffer.py images/s on FAKE128 (9 classes x ``per_class`` images, 128 px, batch 256, DSA)."""
    kit, work = kit.resolve(), work.resolve()
    rundir = work / "runs" / "buffer128"
    rundir.mkdir(parents=True, exist_ok=True)
    out_json = work / "logs" / "ref_buffer.json"
    (work / "logs").mkdir(exist_ok=True)
    cmd = [sys.executable, str(kit / "harness/run_ref.py"), "--repo", str(kit / "reference-stm"), "--script", "buffer.py",
           "--workdir", str(rundir), "--out", str(out_json), "--",
           "--dataset=FAKE128", "--model=ConvNet", "--num_experts=1", f"--train_epochs={epochs}", "--lr_teacher=0.001",
           "--batch_train=256", "--dsa=True", "--buffer_path=buffers", "--data_path=data", "--mom=0", "--l2=0"]
    proc = subprocess.run(cmd, cwd=work, env=_env(kit, {"FAKE128_N": str(per_class)}), capture_output=True, text=True,
                          timeout=timeout)
    (work / "logs" / "ref_buffer.out").write_text(proc.stdout + proc.stderr)
    ts = [float(m.group(1)) for m in map(_EPOCH.match, proc.stdout.splitlines()) if m]
    dt = [b - a for a, b in zip(ts, ts[1:])]
    if not dt:
        raise RuntimeError(f"reference buffer.py gave {len(ts)} epoch lines (rc {proc.returncode}): "
                           f"{(proc.stdout + proc.stderr)[-600:]}")
    sec = statistics.median(dt)
    return {"images_per_s": 9 * per_class / sec, "sec_per_epoch": sec}
