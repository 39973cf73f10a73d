"""Result bundles: one run's results carried between homes that share nothing.

`export_bundle(run_id, path)` writes a self-contained file (`mirada export RUN --format
bundle`); `import_bundle(path)` adds it to another home (`mirada import-results FILE`). The
file format is in mirada.bundles.archive, the members' declared schema (values and
consistency, shared by both directions) in mirada.bundles.schema, what goes in it in
mirada.bundles.build, how it is read back in mirada.bundles.load.
"""

from __future__ import annotations

from mirada.bundles.archive import SCHEMA_VERSION, BundleError
from mirada.bundles.build import ExportedBundle, export_bundle
from mirada.bundles.load import BUNDLE_SOURCE_FORMAT, ImportedBundle, import_bundle
from mirada.bundles.schema import dataset_fingerprint

__all__ = [
    "BUNDLE_SOURCE_FORMAT",
    "SCHEMA_VERSION",
    "BundleError",
    "ExportedBundle",
    "ImportedBundle",
    "dataset_fingerprint",
    "export_bundle",
    "import_bundle",
]
