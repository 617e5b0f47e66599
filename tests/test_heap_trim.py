"""The worker's heap trim (core/heap_trim.py): freed memory that glibc keeps resident goes
back to the system, now (trim_heap) and every few seconds from a thread (trim_heap_every).

Each case runs in a process of its own: its resident memory is then this heap's alone, not
the test runner's with its threads and servers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from core.heap_trim import trim_heap_every, trimming_heap

ROOT = Path(__file__).resolve().parent.parent

# 1,600 blocks of 64 KiB (under glibc's mmap threshold: they come from the heap) and one more
# after them, so that the 100 MiB freed lies below a live block: glibc cannot give it back by
# shrinking the heap's top, only malloc_trim can, page by page.
FRAGMENT = """
import json, sys, time, threading
def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
blocks = [bytearray(64 * 1024) for _ in range(1600)]
pin = bytearray(64 * 1024)
held = rss_mib()
del blocks
freed = rss_mib()
"""


def _run(body: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", FRAGMENT + body], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_a_trim_gives_freed_memory_below_a_live_block_back():
    seen = _run(
        """
time.sleep(0.5)
waited = rss_mib()
from core.heap_trim import trim_heap
trimmed = trim_heap()
print(json.dumps({"held": held, "freed": freed, "waited": waited, "trimmed": trimmed, "after": rss_mib()}))
"""
    )
    assert seen["trimmed"] is True
    # glibc alone keeps it: freed and waited for, the 100 MiB are still resident
    assert seen["waited"] > seen["held"] - 10
    assert seen["after"] < seen["waited"] - 80


def test_the_worker_thread_trims_every_few_seconds_until_stopped():
    seen = _run(
        """
from core.heap_trim import trim_heap_every, trimming_heap
stop = threading.Event()
thread = trim_heap_every(0.2, stop)
deadline = time.monotonic() + 20
while rss_mib() > freed - 80 and time.monotonic() < deadline:
    time.sleep(0.05)
after = rss_mib()
stop.set()
thread.join(5)
print(json.dumps({"freed": freed, "after": after, "alive": thread.is_alive(), "name": thread.name}))
"""
    )
    assert seen["after"] < seen["freed"] - 80
    assert seen["alive"] is False and seen["name"] == "heap-trim"


def test_no_thread_when_the_setting_is_zero():
    before = threading.active_count()
    assert trim_heap_every(0, threading.Event()) is None
    assert threading.active_count() == before


def test_the_workers_trim_thread_lives_as_long_as_its_block():
    with trimming_heap(0.05):
        assert "heap-trim" in [thread.name for thread in threading.enumerate()]
    assert "heap-trim" not in [thread.name for thread in threading.enumerate()]
