"""The API processes' resident memory, read from /proc: how far one request raised it.

A gunicorn worker's peak (VmHWM) is reset before the request (writing 5 to its clear_refs,
Linux 4.0+), so the peak read after it is that request's, not an earlier one's.
"""

from __future__ import annotations

from pathlib import Path

from tests.procfs import descendants, snapshot


class ApiMemory:
    """The workers of the gunicorn master `master_pid` (found anew at each look: a worker
    gunicorn replaced is a new pid)."""

    def __init__(self, master_pid: int) -> None:
        self.master_pid = master_pid

    def workers(self) -> list[int]:
        return sorted(descendants(snapshot(), [self.master_pid]))

    def reset_peaks(self) -> dict[int, int]:
        """Reset each worker's peak to its present size; returns the present sizes (bytes)."""
        sizes = {}
        for pid in self.workers():
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                continue
            sizes[pid] = self._field(pid, "VmRSS:")
        return sizes

    def peaks(self) -> dict[int, int]:
        """Each worker's peak resident bytes since the last reset."""
        return {pid: self._field(pid, "VmHWM:") for pid in self.workers()}

    @staticmethod
    def _field(pid: int, name: str) -> int:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return 0
        line = next((line for line in status.splitlines() if line.startswith(name)), None)
        return int(line.split()[1]) * 1024 if line else 0
