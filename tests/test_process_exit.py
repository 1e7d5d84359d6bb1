"""The console script's exit: the status, the exit handlers and the streams as an
ordinary exit has them, without the interpreter's teardown once torch is loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mlp_lab.process_exit import exit_status, leave


@pytest.mark.parametrize("code, status", [(None, 0), (0, 0), (2, 2), (130, 130)])
def test_exit_status_is_systemexits(code, status):
    assert exit_status(code) == status


def test_a_message_exits_1_and_is_printed(capsys):
    assert exit_status("bad thing") == 1
    assert capsys.readouterr().err == "bad thing\n"


def test_without_torch_it_is_an_ordinary_exit(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    with pytest.raises(SystemExit) as stop:
        leave(2)
    assert stop.value.code == 2


def _run(body: str) -> subprocess.CompletedProcess[str]:
    # A stand-in torch module: the quick path without paying torch's import.
    script = "import sys, types\nsys.modules['torch'] = types.ModuleType('torch')\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("code, status", [("None", 0), ("2", 2), ("130", 130)])
def test_quick_exit_keeps_status_handlers_and_buffered_output(code, status):
    proc = _run(
        f"""
        import atexit
        from mlp_lab.process_exit import leave
        atexit.register(lambda: print("handler ran"))
        sys.stdout.write("buffered, no newline; ")
        sys.stderr.write("to stderr")
        leave({code})
        print("not reached")
        """
    )
    assert proc.returncode == status
    assert proc.stdout == "buffered, no newline; handler ran\n"
    assert proc.stderr == "to stderr"


def test_quick_exit_with_a_message():
    proc = _run("from mlp_lab.process_exit import leave\nleave('error: what went wrong')\n")
    assert (proc.returncode, proc.stderr) == (1, "error: what went wrong\n")


def test_a_running_thread_gets_an_ordinary_exit_that_waits_for_it():
    proc = _run(
        """
        import threading
        from mlp_lab.process_exit import leave
        go = threading.Event()
        def work():
            go.wait()
            print("thread finished")
        threading.Thread(target=work).start()
        try:
            leave(0)
        finally:
            go.set()
        """
    )
    assert proc.returncode == 0
    assert proc.stdout == "thread finished\n"
