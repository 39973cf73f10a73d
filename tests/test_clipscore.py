"""CLIPScore / RefCLIPScore (issue 13 §4): the pure function by hand, and a caption run with
--clipscore-model whose stored per-image values match cosines computed here with numpy from
the tiny CLIP adapter's own embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from run_helpers import work

from mirada import queue
from mirada.domain import Device
from mirada.errors import MiradaError
from mirada.metrics import clipscore, names
from mirada.metrics.report import build_caption_report
from mirada.run_options import CaptionRunOptions, MatchRunOptions


def test_clip_scores_by_hand() -> None:
    img = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    cand = np.array([[3.0, 4.0], [1.0, 0.0], [1.0, 1.0]])  # cosines 0.6, 0 and 1
    refs = np.array([[0.0, 1.0], [4.0, 3.0], [-1.0, 0.0]])
    owner = [0, 0, 1]  # image 2 has no reference
    out = clipscore.clip_scores(img, cand, refs, owner)
    np.testing.assert_allclose(out.clip_s, [2.5 * 0.6, 0.0, 2.5 * 1.0])
    # image 0: best reference cosine max(0.8, 0.96) = 0.96; H(1.5, 0.96) = 2*1.5*.96/2.46
    assert out.ref_clip_s[0] == pytest.approx(2 * 1.5 * 0.96 / (1.5 + 0.96))
    assert out.ref_clip_s[1] == 0.0  # CLIP-S 0 and reference cosine -1 clipped to 0
    assert np.isnan(out.ref_clip_s[2])
    negative = clipscore.clip_scores(img[:1], -img[:1], img[:1], [0])
    assert negative.clip_s[0] == 0.0  # max(cos, 0)


def test_caption_report_carries_clipscore_with_a_bootstrap_ci() -> None:
    refs = {10: ["a red square"], 11: ["a blue circle"], 12: ["a green star"]}
    preds = {10: "a red square", 11: "a red square", 12: "a green star"}
    clip = clipscore.ClipScores(np.array([0.5, 1.0, 1.5]), np.array([0.4, 0.6, np.nan]))
    rep = build_caption_report(refs, preds, clip=clip, clip_model="hf-clip:x", n_resamples=50)
    by_name = {m.name: m for m in rep.metrics}
    assert by_name["CLIPScore"].value == pytest.approx(1.0)
    assert by_name["RefCLIPScore"].value == pytest.approx(0.5)  # the image without refs skipped
    assert by_name["RefCLIPScore"].details["n"] == 2
    for name in clipscore.METRIC_NAMES:
        m = by_name[name]
        assert m.ci_low is not None and m.ci_high is not None
        assert m.ci_low <= m.value <= m.ci_high
        assert m.details["model"] == "hf-clip:x"
    scores = {c.item_id: c.scores for c in rep.captions}
    assert scores[11]["CLIPScore"] == 1.0 and scores[12]["RefCLIPScore"] is None
    assert set(clipscore.METRIC_NAMES) == set(names.CLIPSCORE_METRICS) <= set(names.METRICS)
    plain = build_caption_report(refs, preds, n_resamples=10)
    assert not {m.name for m in plain.metrics} & set(clipscore.METRIC_NAMES)


def test_clipscore_model_is_checked_at_queue_time(dataset: int, models: dict[str, str]) -> None:
    with pytest.raises(MiradaError, match="cannot embed"):
        queue.enqueue(
            dataset,
            models["caption"],
            "caption",
            options=CaptionRunOptions(clipscore_model=models["caption"]),
        )
    with pytest.raises(MiradaError):
        nope = CaptionRunOptions(clipscore_model="nope:")
        queue.enqueue(dataset, models["caption"], "caption", options=nope)
    with pytest.raises(MiradaError, match="clipscore_model"):
        MatchRunOptions.from_dict({"clipscore_model": models["clip"]})


@pytest.mark.slow
def test_caption_run_clipscore_matches_a_hand_computation(
    dataset: int, models: dict[str, str]
) -> None:
    from PIL import Image

    from mirada.datasets import load_items
    from mirada.queries.runs import run_detail
    from mirada.vlm.registry import load_adapter

    run_id = queue.enqueue(
        dataset,
        models["caption"],
        "caption",
        batch_size=4,
        options=CaptionRunOptions(max_length=6, clipscore_model=models["clip"]),
    )
    work()
    detail = run_detail(run_id)
    assert detail["status"] == "succeeded", detail["error"]
    stored = {c["item_id"]: c["scores"] for c in detail["captions"]}
    generated = {c["item_id"]: c["text"] for c in detail["captions"]}

    adapter = load_adapter(models["clip"], device=Device.cpu)
    items = load_items(dataset)
    pixels = [adapter.image_transform(Image.open(it.path).convert("RGB")) for it in items]
    import torch

    img = np.asarray(adapter.encode_pixels(torch.stack(pixels)), dtype=np.float64)
    cand = np.asarray(
        adapter.encode_texts(["A photo depicts " + generated[it.item_id] for it in items]),
        dtype=np.float64,
    )
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    cand /= np.linalg.norm(cand, axis=1, keepdims=True)
    for i, it in enumerate(items):
        cos = float(img[i] @ cand[i])
        clip_s = 2.5 * max(cos, 0.0)
        refs = np.asarray(
            adapter.encode_texts(["A photo depicts " + t for _, t in it.captions]), np.float64
        )
        refs /= np.linalg.norm(refs, axis=1, keepdims=True)
        best = max(float((refs @ cand[i]).max()), 0.0)
        ref_clip_s = 0.0 if clip_s + best == 0 else 2 * clip_s * best / (clip_s + best)
        assert stored[it.item_id]["CLIPScore"] == pytest.approx(clip_s, abs=1e-5)
        assert stored[it.item_id]["RefCLIPScore"] == pytest.approx(ref_clip_s, abs=1e-5)
    corpus = detail["metrics"]
    mean = np.mean([stored[it.item_id]["CLIPScore"] for it in items])
    assert corpus["CLIPScore"] == pytest.approx(mean)
    assert corpus["CLIPScore_ci_low"] <= corpus["CLIPScore"] <= corpus["CLIPScore_ci_high"]
    assert "BLEU-4" in corpus and "CIDEr" in corpus  # the n-gram metrics are still there
    assert any(stored[it.item_id]["CLIPScore"] > 0 for it in items)  # not all clipped to 0
