"""A stand-in for an ai4s-jobq worker that is slow to start, as a Python worker is (imports, auth).

Like upstream's manager, it installs its signal handlers first and writes its PID file after them
(workforce_monitor's PidFile), so its PID file is the sign that it is ready. Until then a SIGUSR1 or
SIGUSR2 has its default action: the process dies (exit 128 + signal number seen by its parent).

Env: STUB_LOG (required), STUB_STARTUP_MS (default 1500), STUB_TASK_MS (default 300), STUB_WORKER_ID and
JOBQ_PID_DIR (where its PID file goes). Log lines: "ready PID", "start N", "done N", "signal NAME", "exit 0".
"""

import os
import signal
import sys
import time

log_path = os.environ["STUB_LOG"]


def note(line: str) -> None:
    with open(log_path, "a") as f:
        f.write(line + "\n")


time.sleep(int(os.environ.get("STUB_STARTUP_MS", "1500")) / 1000)
stopping = False


def on_signal(number, _frame):
    global stopping
    note(f"signal {signal.Signals(number).name}")
    stopping = True


for s in (signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, on_signal)

pid_file = os.path.join(os.environ["JOBQ_PID_DIR"], os.environ.get("STUB_WORKER_ID", "late") + ".pid")
os.makedirs(os.path.dirname(pid_file), exist_ok=True)
fd = os.open(pid_file, os.O_CREAT | os.O_WRONLY | os.O_EXCL)
os.write(fd, str(os.getpid()).encode())
os.close(fd)
note(f"ready {os.getpid()}")

task = 0
task_s = int(os.environ.get("STUB_TASK_MS", "300")) / 1000
while not stopping:
    task += 1
    note(f"start {task}")
    time.sleep(task_s)
    note(f"done {task}")
os.remove(pid_file)
note("exit 0")
sys.exit(0)
