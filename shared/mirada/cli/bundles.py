"""`mirada import-results FILE`: add a run exported elsewhere (`mirada export RUN --format
bundle`) to this home. The database and bundle code are imported inside the command."""

from __future__ import annotations

import argparse

from mirada.cli import arg, command

IMPORT_DESCRIPTION = """\
Add a result bundle written by `mirada export RUN --format bundle -o FILE` on another
machine to this home. The run appears on Runs, Results, Compare and Hardware like a local
one, with its origin (host and run id there); it is never executed here.

Its dataset is matched by fingerprint (item filenames and image SHA-256s). Without a match
the bundle's items and captions become a new dataset; its image files come along only when
the bundle was exported with --with-images, else the pages say they are not present here.
Importing the same bundle again changes nothing, except that a bundle exported with
--with-images fills in the image files its dataset lacks here (checked against their
SHA-256s; files already here are kept). Damaged or edited files (checksums) and
bundles from a newer Mirada are refused.
"""


@command(
    "import-results",
    "Import a result bundle (a run exported with --format bundle) from another machine",
    arg("file", metavar="FILE", help="the bundle file"),
    description=IMPORT_DESCRIPTION,
)
def import_results_cmd(args: argparse.Namespace) -> int:
    from mirada.bundles import import_bundle

    done = import_bundle(args.file)
    origin = f"from {done.origin_host} (run {done.origin_run_id} there)"
    images = f"{done.images_added} image file{'s' * (done.images_added != 1)}"
    if done.already:
        if done.images_added:
            print(
                f"already imported as run {done.run_id}: {origin}; added its {images} to "
                f"dataset {done.dataset_name!r} (id {done.dataset_id}), which lacked them"
            )
        else:
            print(f"already imported as run {done.run_id}: {origin}; nothing to do")
        return 0
    for note in done.notes:
        print(f"note: {note}")
    where = "new dataset" if done.dataset_created else "dataset"
    print(
        f"imported run {done.run_id} {origin}: {done.model_id} ({done.task}) on {where} "
        f"{done.dataset_name!r} (id {done.dataset_id}); see `mirada show {done.run_id}`"
    )
    if done.images_added:
        print(f"added {images} the dataset lacked")
    return 0
