"""MiniStack's own entry point, with one correction: a function's log lines are all kept, as on AWS.

scripts/local_aws.py starts MiniStack through this file (tests/README.md, "MiniStack beyond the registry").

On AWS every line a function writes to stdout or stderr reaches its log group. MiniStack 1.5.33 reads a warm
provided-runtime environment's output on a thread and, once the invocation has answered, takes from it only what
arrives before a 5 ms silence (50 ms if nothing came, 250 ms at most). On a loaded machine the thread can fall more
than 5 ms behind: the invocation's last lines (jitp's audit record is its last line) then stay queued, to be logged
with that environment's next invocation, or never if none comes (measured: a CI run lost one clone's record). Here
the same drain waits for a 100 ms silence (500 ms if nothing came, 5 s at most). The path a device sees is not
slowed down (its certificate is ACTIVE before the invocation answers); the invocation ends, and its environment is
free again, about 100 ms later than without the correction.
"""

from __future__ import annotations

import sys

from importlib.metadata import version

from ministack.app import main
from ministack.core import lambda_runtime

PINNED = "1.5.33"
FIRST_LINE_WAIT, IDLE_CONFIRM, HARD_CAP = 0.5, 0.1, 5.0


def patch() -> None:
    installed = version("ministack")
    drain = getattr(lambda_runtime.Worker, "_drain_stderr_bounded", None)
    if installed != PINNED or drain is None:
        sys.exit(f"ministack_run: the log capture corrected here is MiniStack {PINNED}'s, this is {installed}: "
                 "re-check it (tests/README.md, upgrading MiniStack) and update PINNED")

    def drain_until_quiet(self, first_line_wait: float = FIRST_LINE_WAIT, idle_confirm: float = IDLE_CONFIRM,
                          hard_cap: float = HARD_CAP) -> str:
        return drain(self, first_line_wait=max(first_line_wait, FIRST_LINE_WAIT),
                     idle_confirm=max(idle_confirm, IDLE_CONFIRM), hard_cap=max(hard_cap, HARD_CAP))

    lambda_runtime.Worker._drain_stderr_bounded = drain_until_quiet


if __name__ == "__main__":
    patch()
    sys.argv[0] = "ministack"
    sys.exit(main())
