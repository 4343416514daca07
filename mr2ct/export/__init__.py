"""Exporting trained runs: SavedModel for TF Serving, .keras files, and their contract."""

from mr2ct.export.exporter import (
    EXPORT_FILE,
    SEGMENT_PROBABILITIES_SIGNATURE,
    SEGMENT_SIGNATURE,
    SEGMENTER_FILE,
    ExportResult,
    export_run,
    load_run_generators,
    resolve_export,
)

__all__ = [
    "EXPORT_FILE",
    "SEGMENT_PROBABILITIES_SIGNATURE",
    "SEGMENT_SIGNATURE",
    "SEGMENTER_FILE",
    "ExportResult",
    "export_run",
    "load_run_generators",
    "resolve_export",
]
