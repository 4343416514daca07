"""A terminal progress line for long loops: steps, rate, ETA and the latest losses."""

from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """Prints ``step/total, s/step, ETA, values`` to a stream.

    On a terminal the line is redrawn in place; otherwise (logs, CI) a line is
    printed at most every ``interval`` seconds and at the end.

    Args:
        total: the final step.
        start: the step the loop starts from (after a resume). Defaults to `0`.
        stream: where to write. Defaults to `sys.stderr`.
        interval: seconds between lines when not on a terminal. Defaults to `10`.
        enabled: print anything at all. Defaults to `True`.
    """

    def __init__(self, total, start=0, stream=None, interval=10.0, enabled=True, label="step"):
        self.total = int(total)
        self.start_step = int(start)
        self.stream = stream or sys.stderr
        self.interval = float(interval)
        self.enabled = enabled
        self.label = label
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._t0 = time.perf_counter()
        self._last_print = 0.0
        # The rate is measured from the first update on, so the first step's
        # one-off cost (tracing, XLA compilation) does not inflate the ETA.
        self._first = None
        self._rate_step = self.start_step

    def restart_rate(self, step):
        """Measure the rate afresh from ``step`` on: the steps after it cost differently (e.g. a new
        resolution, and a new trace), so the ETA follows their rate, not the average of both kinds."""
        self._t0 = time.perf_counter()
        self._first = None
        self._rate_step = int(step)

    def update(self, step, values=None, force=False):
        if not self.enabled:
            return
        now = time.perf_counter()
        if step > self._rate_step and self._first is None:
            self._first = (now, step)
        if not (self._tty or force or now - self._last_print >= self.interval):
            return
        self._last_print = now
        done = step - self.start_step
        t_ref, step_ref = (self._t0, self._rate_step)
        if self._first is not None and step > self._first[1]:
            t_ref, step_ref = self._first
        measured = done > 0 and step > step_ref
        rate = (now - t_ref) / (step - step_ref) if measured else float("nan")
        eta = rate * (self.total - step) if measured else float("nan")
        text = f"{self.label} {step}/{self.total}"
        if measured:
            text += f"  {rate:.3f} s/{self.label}  ETA {format_duration(eta)}"
        if values:
            text += "  " + " ".join(f"{k}={v:.4g}" for k, v in values.items())
        if self._tty:
            self.stream.write("\r\033[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self, step, values=None):
        self.update(step, values, force=True)
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()
