"""Datasets: import (CSV, imagefolder, COCO, Karpathy) into a content-addressed image store.

Writes go through `shared.datasets.store`; reads through `shared.datasets.catalog`.
"""

from shared.datasets.catalog import (
    DatasetSummary,
    ItemRecord,
    list_datasets,
    load_items,
    resolve_dataset,
)
from shared.datasets.formats import FORMATS, KARPATHY_SPLITS
from shared.datasets.importer import ImportReport, import_dataset
from shared.datasets.paths import image_path, thumbnail_path
from shared.datasets.problems import DatasetImportError, Problem
from shared.datasets.store import delete_dataset

__all__ = [
    "FORMATS",
    "KARPATHY_SPLITS",
    "DatasetImportError",
    "DatasetSummary",
    "ImportReport",
    "ItemRecord",
    "Problem",
    "delete_dataset",
    "image_path",
    "import_dataset",
    "list_datasets",
    "load_items",
    "resolve_dataset",
    "thumbnail_path",
]
