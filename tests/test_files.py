"""dwsjax.files: the exclusive lock makes a second process wait for the first."""

import subprocess
import sys

from dwsjax.files import exclusive_lock

HOLDER = """
import sys, time
from pathlib import Path
from dwsjax.files import exclusive_lock

directory, log = Path(sys.argv[1]), Path(sys.argv[2])
with exclusive_lock(directory, "testing"):
    log.write_text("holder in\\n")
    print("locked", flush=True)
    time.sleep(1.0)
    with open(log, "a") as f:
        f.write("holder out\\n")
"""


def test_a_second_process_waits_for_the_lock_and_says_so(tmp_path, capsys):
    log = tmp_path / "log"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "store"), str(log)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    with exclusive_lock(tmp_path / "store", "testing"):
        with open(log, "a") as f:
            f.write("second in\n")
    assert holder.wait() == 0
    assert log.read_text().splitlines() == ["holder in", "holder out", "second in"]
    assert "waiting for another process testing" in capsys.readouterr().err
