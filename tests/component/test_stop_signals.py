"""``wirestream run`` takes SIGINT and SIGTERM as stop requests from its first moment.

Importing Beam takes seconds; a supervisor's SIGTERM in that time used to kill the run by the
default action (exit -15) where a running one drains and exits 0.
"""

from __future__ import annotations

import subprocess
import sys

from tests.kit import ROOT

_PROBE = """
import sys
import pipelines.lifecycle as lifecycle
install = lifecycle.StopSignals.install
def recording(self):
    print("beam loaded" if "apache_beam" in sys.modules else "beam not loaded", flush=True)
    return install(self)
lifecycle.StopSignals.install = recording
from pipelines.cli import main
sys.exit(main(["run", "--no-such-option"]))
"""


def test_stop_signals_are_handled_before_beam_is_imported() -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stdout.splitlines()[0] == "beam not loaded"
    assert "--no-such-option" in result.stderr
