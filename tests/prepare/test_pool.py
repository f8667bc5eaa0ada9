"""``ordered_map``'s pool workers end when the process that started them is killed (no orphans left idle)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO

_SCRIPT = '''
import os, sys, time
from pathlib import Path
from slamkit.prepare.base import ordered_map

def slow(i):
    Path(sys.argv[1], str(os.getpid())).touch()
    time.sleep(60)
    return i

if __name__ == "__main__":
    for _ in ordered_map(slow, list(range(4)), 2, "test", "item", chunksize=1):
        pass
'''


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().split(") ")[-1].startswith("Z"))  # a zombie has ended


def test_killed_parent_leaves_no_workers(tmp_path: Path) -> None:
    script = tmp_path / "run_pool.py"
    script.write_text(_SCRIPT)
    marks = tmp_path / "pids"
    marks.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    parent = subprocess.Popen([sys.executable, str(script), str(marks)], env=env)
    try:
        deadline = time.monotonic() + 60
        while len(list(marks.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = [int(p.name) for p in marks.iterdir()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers), f"workers {workers} outlived their killed parent"
    finally:
        parent.kill()
        for pid in (int(p.name) for p in marks.iterdir()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
