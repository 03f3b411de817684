"""Writing undelivered documents and dead letters to the failure folder, and counting them.

:class:`FolderWriter` is where a document that leaves memory without reaching the cluster is
counted: ``spooled`` when its segment is written, ``dropped`` (with the reason) when there is
no folder, the folder is over its cap or cannot be written. Every outcome is reported once
per kind through the handler's :class:`~._report.Reporter`. Blocking disk I/O; thread-safe
as far as :class:`~._spool.Spool` is (the spooler thread and ``close()`` may both write).
"""

from __future__ import annotations

from ._dead_letter import DeadLetter
from ._report import Reporter
from ._spool import Spool
from ._stats import DeliveryStats

__all__ = ["FolderWriter"]


class FolderWriter:
    """Spools or drops documents, writes dead letters, reports (``spool`` None: no folder)."""

    def __init__(self, spool: Spool | None, stats: DeliveryStats, reporter: Reporter) -> None:
        self.spool = spool
        self._stats = stats
        self._reporter = reporter
        self._unreadable_reported = 0
        self._untrusted_reported = 0
        self._distrust_reported: str | None = None

    def spill(self, items: list[bytes], reason: str) -> bool:
        """Put ``items`` in a new segment, or count them dropped. Returns whether written."""
        if not items:
            return False
        spool = self.spool
        if spool is None:
            self._stats.drop(f"{reason}, no flush_failure_folder", len(items))
            self._reporter.warning(
                "dropped",
                "ecs_metrics_handler: %d document(s) dropped: %s, no flush_failure_folder set",
                len(items),
                reason,
            )
            return False
        try:
            written = spool.write_segment(items)
        except OSError as e:
            self._stats.drop("failure folder unwritable", len(items))
            self._reporter.error(
                "spool-error",
                "ecs_metrics_handler: %d document(s) dropped: cannot write to %s: %s",
                len(items),
                spool.folder,
                e,
            )
            return False
        if not written:
            self._stats.drop("failure folder full", len(items))
            self._reporter.error(
                "spool-full",
                "ecs_metrics_handler: %d document(s) dropped: %s is over its %d-byte cap",
                len(items),
                spool.folder,
                spool.max_bytes,
            )
            return False
        self._stats.add("spooled", len(items))
        return True

    def drop(self, count: int, reason: str) -> None:
        """Count ``count`` records dropped without trying the folder, and report it."""
        if count:
            self._stats.drop(reason, count)
            self._reporter.error(
                "dropped-closing", "ecs_metrics_handler: %d record(s) dropped: %s", count, reason
            )

    def dead_letter(self, letters: list[DeadLetter]) -> None:
        """Append ``letters`` to the dead-letter file (nothing without a folder)."""
        spool = self.spool
        if spool is None or not letters:
            return
        try:
            written = spool.write_dead_letters(letters)
        except OSError as e:
            self._reporter.error(
                "spool-error",
                "ecs_metrics_handler: cannot write dead letters to %s: %s",
                spool.folder,
                e,
            )
            return
        if not written:
            self._reporter.error(
                "spool-full",
                "ecs_metrics_handler: %d dead letter(s) not written: %s is over its %d-byte cap",
                len(letters),
                spool.folder,
                spool.max_bytes,
            )

    def quarantine(self, items: list[bytes], reason: str) -> None:
        """Keep ``items`` the cluster refused as a whole request, for a person; never retried."""
        if self.spool is None or not items:
            return
        path = self.spool.quarantine(items, reason)
        self._reporter.error(
            "quarantine",
            "ecs_metrics_handler: %d spooled document(s) refused as a whole request (%s); "
            "kept in %s, not retried",
            len(items),
            reason,
            path,
        )

    def report_unreadable(self) -> None:
        """Report, once each, the folder entries the spool skipped as unreadable, the
        documents it quarantined as not written by this handler (counted in ``untrusted``),
        and why the folder itself is not trusted when it is not (then nothing is replayed)."""
        spool = self.spool
        if spool is None:
            return
        if spool.distrust is not None and spool.distrust != self._distrust_reported:
            self._reporter.error(
                "untrusted-folder",
                "ecs_metrics_handler: not replaying %s: it %s (see "
                "flush_failure_folder_allow_insecure)",
                spool.folder,
                spool.distrust,
            )
        self._distrust_reported = spool.distrust
        for path, count, reason in spool.untrusted_files[self._untrusted_reported :]:
            self._stats.add("untrusted", count)
            self._reporter.error(
                "untrusted",
                "ecs_metrics_handler: %d document(s) in the failure folder not written by this "
                "handler, never sent; kept in %s (first: %s)",
                count,
                path,
                reason,
            )
        self._untrusted_reported = len(spool.untrusted_files)
        for name in list(spool.unreadable)[self._unreadable_reported :]:
            self._reporter.error(
                "unreadable",
                "ecs_metrics_handler: skipping %s in %s: %s",
                name,
                spool.folder,
                spool.unreadable[name],
            )
        self._unreadable_reported = len(spool.unreadable)
