"""Datasets: import (CSV, imagefolder, COCO, Karpathy) into a content-addressed image store.

Writes go through `mirada.datasets.store`; reads through `mirada.datasets.catalog`.
"""

from mirada.datasets.catalog import (
    DatasetSummary,
    ItemRecord,
    list_datasets,
    load_items,
    resolve_dataset,
)
from mirada.datasets.formats import FORMATS, KARPATHY_SPLITS
from mirada.datasets.importer import ImportReport, import_dataset
from mirada.datasets.paths import image_path, thumbnail_path
from mirada.datasets.problems import DatasetImportError, Problem
from mirada.datasets.store import delete_dataset

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
