"""Datasets: upload (zip, or images + CSV), the validation report, list, gallery, delete.

After an import the uploader is emptied (a fresh widget key), the preview shows the new
dataset and the page says what to do next: queue runs on it (a link to the Runs page's form,
`runs?dataset=D`), then start a worker."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pandas as pd
import streamlit as st

from mirada.config import get_settings
from mirada.dashboard import charts, data, links
from mirada.metrics.formatting import MISSING
from mirada.text_safety import markdown_text

IMPORT_TYPES = ["zip", "csv", "json", "jsonl", "txt", "png", "jpg", "jpeg", "webp", "gif", "bmp"]
GALLERY_COLUMNS = 6
PAGE_SIZE = 24
SELECTED_KEY = "datasets_selected"
UPLOAD_ROUND_KEY = "datasets_upload_round"  # bumped after an import: a new, empty uploader
IMPORTED_KEY = "datasets_imported"  # the last import's report, shown until the next one

st.title("Datasets")
data.ensure_database()


def _save_uploads(files: list) -> Path:
    """Save uploaded files into a fresh folder under MIRADA_HOME/staging; return the path to
    import (the zip itself when one zip was uploaded, else the folder)."""
    folder = get_settings().staging_dir / f"upload-{uuid.uuid4().hex[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        name = Path(f.name).name  # never trust a client path
        (folder / name).write_bytes(f.getbuffer())
    zips = [f for f in files if f.name.lower().endswith(".zip")]
    if len(zips) == 1 and len(files) == 1:
        return folder / Path(zips[0].name).name
    return folder


def _problems_frame(problems: list) -> pd.DataFrame:
    return pd.DataFrame(
        [{"where": p.where, "problem": p.message} for p in problems], columns=["where", "problem"]
    )


def _import_panel() -> None:
    with st.expander("Import a dataset", expanded=data.dataset_summaries().empty):
        st.caption(
            "Upload one **.zip** (a CSV `filename,caption[,category]`, COCO or Karpathy JSON, or "
            "an image folder per category), or **images plus their CSV**. The same importer as "
            "`mirada import PATH` checks every row and image."
        )
        with st.form("datasets_import_form", clear_on_submit=False):
            files = st.file_uploader(
                "Files",
                type=IMPORT_TYPES,
                accept_multiple_files=True,
                key=f"datasets_upload_{st.session_state.get(UPLOAD_ROUND_KEY, 0)}",
            )
            c1, c2 = st.columns([2, 1])
            name = c1.text_input("Dataset name (optional)", key="datasets_name")
            lenient = c2.checkbox(
                "Lenient: skip bad rows/images",
                key="datasets_lenient",
                help="Import what is valid and list what was skipped, instead of refusing.",
            )
            submitted = st.form_submit_button("Import", type="primary")
        if submitted:
            if not files:
                st.warning("Choose a .zip, or images plus a CSV, first.")
                return
            _run_import(files, name.strip() or None, lenient)


def _run_import(files: list, name: str | None, lenient: bool) -> None:
    from mirada.datasets import DatasetImportError, import_dataset
    from mirada.errors import MiradaError

    path = _save_uploads(files)
    folder = path if path.is_dir() else path.parent
    try:
        with st.spinner("Importing…"):
            label = "upload: " + ", ".join(sorted(f.name for f in files))[:200]
            report = import_dataset(path, name=name, lenient=lenient, source_label=label)
    except DatasetImportError as exc:
        st.error(
            f"Nothing was imported: {exc.total} problem(s) found"
            + (". Tick *Lenient* to skip the bad rows." if exc.can_skip else ".")
        )
        st.dataframe(_problems_frame(exc.problems), hide_index=True, key="datasets_problems")
        if exc.total > len(exc.problems):
            st.caption(f"… and {exc.total - len(exc.problems)} more.")
        return
    except MiradaError as exc:
        st.error(markdown_text(exc))
        return
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    data.invalidate()
    st.session_state[IMPORTED_KEY] = report
    st.session_state[UPLOAD_ROUND_KEY] = st.session_state.get(UPLOAD_ROUND_KEY, 0) + 1
    st.session_state[SELECTED_KEY] = report.id  # the preview below shows the new dataset
    st.rerun()


def _imported(ids: set[int]) -> None:
    """What the last import brought in, what it skipped, and what to do next (until the next
    import, or until that dataset is deleted; `ids` are the datasets there are)."""
    report = st.session_state.get(IMPORTED_KEY)
    if report is None or report.id not in ids:
        st.session_state.pop(IMPORTED_KEY, None)
        return
    st.success(
        f"Imported **{markdown_text(report.name)}** (id {report.id}): {report.images} images, "
        f"{report.captions} captions, {report.categories} categories. **Next:** queue runs "
        "on it (*Queue runs on this dataset* under Preview, or `mirada queue --dataset "
        f"{report.id} --model ID --task match`), then start a worker (`mirada worker`) to "
        "compute them.",
        icon=":material/check:",
    )
    for warning in report.warnings:
        st.warning(markdown_text(warning))
    if report.skipped:
        st.warning(f"Skipped {len(report.skipped)} row(s)/image(s):")
        st.dataframe(_problems_frame(report.skipped), hide_index=True, key="datasets_skipped")


def _gallery(dataset_id: int) -> None:
    cats = data.dataset_categories(dataset_id)
    c1, c2 = st.columns([2, 1])
    category = c1.selectbox("Category", ["All", *cats], key=f"datasets_gallery_cat_{dataset_id}")
    chosen = None if category == "All" else category
    total = data.dataset_item_count(dataset_id, chosen)
    pages = max(1, -(-total // PAGE_SIZE))
    page = c2.number_input(
        f"Page (of {pages})", 1, pages, 1, key=f"datasets_gallery_page_{dataset_id}"
    )
    items = data.dataset_gallery(
        dataset_id, category=chosen, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    if items.empty:
        st.info("No images in this category.")
        return
    from mirada.datasets import image_path, thumbnail_path

    cols = st.columns(GALLERY_COLUMNS)
    for i, row in enumerate(items.to_dict("records")):
        thumb = thumbnail_path(row["sha256"])
        src = thumb if thumb.exists() else image_path(row["sha256"], row["ext"])
        with cols[i % GALLERY_COLUMNS]:
            if src.exists():
                st.image(str(src), width="stretch")
            else:
                st.caption("(image file missing)")
            category = markdown_text(row["category"] or "no category")
            st.markdown(f"**{markdown_text(row['filename'])}** · {category}")
            for cap in row["captions"][:3]:
                st.caption(markdown_text(cap))


def _delete(dataset_id: int, name: str, runs: int) -> None:
    with st.popover("Delete dataset…", icon=":material/delete:"):
        st.warning(
            f"This deletes **{markdown_text(name)}**, its items, captions and **{runs} run(s)** "
            "with their results."
        )
        typed = st.text_input(
            "Type the dataset name to confirm", key=f"datasets_delete_confirm_{dataset_id}"
        )
        if st.button(
            "Delete permanently",
            type="primary",
            disabled=typed != name,
            key=f"datasets_delete_{dataset_id}",
        ):
            from mirada.datasets import delete_dataset
            from mirada.errors import MiradaError

            try:
                delete_dataset(dataset_id)
            except MiradaError as exc:  # already gone, a read-only database, a racing import
                st.error(markdown_text(exc))
                return
            data.invalidate()
            st.toast(f"Deleted dataset {markdown_text(name)}")
            st.rerun()


_import_panel()

summaries = data.dataset_summaries()
_imported({int(i) for i in summaries["id"]})
if summaries.empty:
    st.info(
        "**No datasets yet.** Import one with `mirada import PATH` (a folder, a .zip, or a "
        "CSV/COCO/Karpathy file), or upload one above. Try `mirada demo` for the bundled "
        "synthetic shapes set."
    )
    st.stop()

st.subheader("All datasets")
# a grid draws an unset cell as "None"
text = [c for c in summaries.columns if not pd.api.types.is_numeric_dtype(summaries[c])]
st.dataframe(
    summaries.assign(**{c: summaries[c].where(summaries[c].notna(), MISSING) for c in text}),
    hide_index=True,
    key="datasets_table",
)
data.downloads(summaries, "datasets", "datasets_dl")

st.subheader("Preview")
names = dict(zip(summaries["id"].astype(int), summaries["name"], strict=True))
selected = st.selectbox(
    "Dataset",
    list(names),
    format_func=lambda i: f"{names[i]} (id {i})",
    key=SELECTED_KEY,
)
if selected is not None:
    row = summaries[summaries["id"] == selected].iloc[0]
    st.page_link(
        links.PAGE_FILES[links.RUNS],
        label="Queue runs on this dataset",
        icon=":material/play_circle:",
        query_params={"dataset": str(int(selected))},
    )
    m1, m2, m3 = st.columns(3)
    m1.metric("Images", int(row["images"]))
    m2.metric("Captions", int(row["captions"]))
    m3.metric("Categories", int(row["categories"]))
    counts = data.category_counts(int(selected))
    st.altair_chart(
        charts.count_bars(
            counts, x="category", y="images", title="Images per category", y_title="images"
        ),
        width="stretch",
    )
    _gallery(int(selected))
    n_runs = len(data.runs_frame(int(selected)))
    _delete(int(selected), str(row["name"]), n_runs)
