"""The real app process: SIGTERM and SIGHUP close the window as its close button does
(the session is saved, exit status 0) instead of killing it on the spot."""

import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_signal_closes_the_app_and_saves_the_session(tmp_path, signame):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path),
               HOME=str(tmp_path),
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "convscope.app", "--fresh"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        time.sleep(8)            # the window is up and has shown its first maps
        assert proc.poll() is None, proc.communicate()[1].decode()
        proc.send_signal(getattr(signal, signame))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    saved = list(tmp_path.rglob("ConvScope.conf"))
    assert saved, list(tmp_path.rglob("*"))
    text = saved[0].read_text(errors="replace")
    assert "image=" in text and "chelsea" in text
