"""The file side of the review widget: the dialogs that choose a session to open, the
files of a new one and an export's path, and the export itself (off the GUI thread).  A
mixin of :class:`~napari_hpa._qt.review.ReviewWidget`, whose session, worker and signals it
uses.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QFileDialog

from ..fileio import check_outputs


class SessionFiles:
    """Choosing session files and exporting."""

    def _choose_session(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Review session", "",
                                              "Review sessions (*.hpa);;All files (*)")
        if path:
            self.open_session(path)

    def _choose_create(self) -> None:
        images = QFileDialog.getExistingDirectory(self, "Folder of image sets")
        if not images:
            return
        labels, _ = QFileDialog.getOpenFileName(self, "Labels CSV (Id,Target)", images,
                                                "CSV (*.csv)")
        if not labels:
            return
        probs, _ = QFileDialog.getOpenFileNames(
            self, "Probabilities CSV (optional: cancel for none; one file per fold for K folds)",
            images, "CSV (*.csv)")
        path, _ = QFileDialog.getSaveFileName(self, "New review session", images,
                                              "Review sessions (*.hpa)")
        if not path:
            return
        if not path.endswith(".hpa"):
            path += ".hpa"
        self.create_session(path, images, labels, probs or None, overwrite=True)

    # ------------------------------------------------------------------ export

    def _choose_export(self) -> None:
        if self.session is None:
            return
        start = str(self.session.path.with_name(self.session.path.stem + "_corrected.csv"))
        path, _ = QFileDialog.getSaveFileName(self, "Export corrected labels", start, "CSV (*.csv)")
        if path:
            def beside(suffix: str, check) -> str | None:
                return (str(Path(path).with_name(Path(path).stem + suffix))
                        if check.isChecked() else None)

            self.export(path, changed_only=self.changed_only_check.isChecked(),
                        audit=beside("_audit.csv", self.audit_check),
                        review=beside("_review.csv", self.review_check))

    def export(self, path: str | Path, *, changed_only: bool = False,
               audit: str | Path | None = None, review: str | Path | None = None) -> None:
        """Export the session's labels, and given them the audit and the review CSV (all or
        none, through the store) off the GUI thread; :attr:`exported` follows with the
        counts."""
        if self.session is None or self.busy:
            return
        self._commit_note()
        self._clear_error()
        session = self.session

        def done(counts):
            self.queue_status.setText(
                f"Exported {counts['written']} rows ({counts['changed']} changed) "
                f"to {Path(path).name}"
                + (f"; audit: {counts['audit_edits']} edits" if audit else "")
                + (f"; review: {Path(review).name}" if review else ""))
            self.exported.emit(counts)

        def work():
            check_outputs([("the export", path), ("the audit", audit), ("the review CSV", review)],
                          inputs=[("the session", session.path)], make_folders=False)
            return session.export(path, changed_only=changed_only, audit=audit, review=review)

        self._run(work, done, f"Exporting to {Path(path).name}…")
