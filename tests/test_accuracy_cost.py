"""The accuracy cost of benchmark variants in task terms (issue 21 §2): paired R@1 and
zero-shot deltas with McNemar's p for embedders, CIDEr/BLEU-4 deltas for captioners, bounded
by --accuracy-items, decoding each image once per decoder."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from mirada.datasets import ItemRecord, load_items
from mirada.domain import Device, Dtype
from mirada.metrics import captioning, names
from mirada.metrics.task_delta import caption_scores
from mirada.run_options import REFERENCE_VARIANT, BenchmarkRunOptions, Variant
from mirada.vlm.registry import load_adapter
from mirada.worker.tasks.accuracy_cost import CostResult, accuracy_cost
from mirada.worker.tasks.benchmark import _operations
from mirada.worker.tasks.variants import Contender, build_contenders, decoders

I2T, T2I, ZS = names.i2t_recall(1), names.t2i_recall(1), names.ZEROSHOT_ACCURACY
N = 8  # images, two captions each; classes alternate "red", "blue"
JAVA_MISSING = shutil.which("java") is None


# --- fakes: an image's embedding says whose captions and which class it matches -------------
def _items(
    n: int = N, *, captions: bool = True, categories: Sequence[str | None] = ()
) -> list[ItemRecord]:
    cats = list(categories) or [("red", "blue")[i % 2] for i in range(n)]
    return [
        ItemRecord(
            item_id=100 + i,
            sha256=f"{i:064x}",
            path=Path(f"/nowhere/{i}.png"),
            filename=f"{i}.png",
            category=cats[i],
            captions=[(1000 + 2 * i, f"cap {i} a"), (1001 + 2 * i, f"cap {i} b")]
            if captions
            else [],
        )
        for i in range(n)
    ]


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


CLASSES = ["blue", "red"]  # sorted, as the prompts are made


def _embedder(
    matches: dict[int, int], classes: dict[int, str], log: list[str] | None = None
) -> dict[str, Callable[[Any, Sequence[str]], Any]]:
    """Ops of a fake embedder: image i embeds as caption-owner e_{matches.get(i, i)} plus half
    of its class's axis (classes.get(i, own class)); caption "cap j x" embeds as e_j, a
    zero-shot prompt as its class's axis. Dimension N + 2."""

    def image(pixels: Any, texts: Sequence[str]) -> Any:
        out = np.zeros((len(pixels), N + 2))
        for row, value in enumerate(pixels[:, 0, 0, 0].tolist()):
            i = int(value)
            out[row, matches.get(i, i)] = 1.0
            out[row, N + CLASSES.index(classes.get(i, ("red", "blue")[i % 2]))] = 0.5
        return torch.from_numpy(_unit(out))  # a tensor: the cost takes arrays or tensors

    def text(pixels: Any, texts: Sequence[str]) -> np.ndarray:
        if log is not None:
            log.extend(texts)
        out = np.zeros((len(texts), N + 2))
        for row, t in enumerate(texts):
            if t.startswith("cap "):
                out[row, int(t.split()[1])] = 1.0
            else:
                out[row, N + next(k for k, c in enumerate(CLASSES) if c in t)] = 1.0
        return _unit(out)

    return {names.IMAGE_ENCODE: image, names.TEXT_ENCODE: text}


def _decoder(counts: Counter[str], tag: str) -> Callable[[Path], torch.Tensor]:
    def decode(path: Path) -> torch.Tensor:
        counts[f"{tag}:{path.stem}"] += 1
        return torch.full((1, 2, 2), float(path.stem))

    return decode


def _contender(name: str, variant: Variant, ops: dict[str, Any], decode: Any) -> Contender:
    return Contender(name, variant, None, ops, decode=decode)


BF16 = Variant(Dtype.bf16)


def _dense_outcomes(
    matches: dict[int, int], classes: dict[int, str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Independent of mirada's retrieval: the full similarity matrix, a hit only when the own
    item beats every other strictly (ties count against the model)."""
    ops = _embedder(matches, classes)
    pixels = torch.arange(N, dtype=torch.float32)[:, None, None, None].expand(N, 1, 2, 2)
    img = ops[names.IMAGE_ENCODE](pixels, []).numpy().astype(np.float64)
    texts = [t for it in _items() for _, t in it.captions]
    owner = np.repeat(np.arange(N), 2)
    sim = img @ ops[names.TEXT_ENCODE](None, texts).astype(np.float64).T  # [N, 2N]
    own = owner[None, :] == np.arange(N)[:, None]
    i2t = np.where(own, sim, -np.inf).max(1) > np.where(own, -np.inf, sim).max(1)
    own_t = sim[owner, np.arange(2 * N)]
    t2i = np.array([own_t[j] > np.delete(sim[:, j], owner[j]).max() for j in range(2 * N)])
    cls = np.stack([ops[names.TEXT_ENCODE](None, [c])[0] for c in CLASSES])
    pred = np.argmax(img @ cls.T, axis=1)
    zs = pred == [CLASSES.index(("red", "blue")[i % 2]) for i in range(N)]
    top1 = np.argmax(sim, axis=1)  # first maximum: the lower caption index on ties
    return i2t, t2i, zs, top1


def _mcnemar_p(variant: np.ndarray, reference: np.ndarray) -> float:
    b = int(np.sum(reference & ~variant))
    c = int(np.sum(~reference & variant))
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


# the reference misses image 7's captions (it looks like image 0) and calls image 5 red; the
# variant misses images 1 and 4 (they look like 2 and 5) and calls images 2 and 3 by the
# wrong class, but gets image 5's class right
REF_MATCHES, REF_CLASSES = {7: 0}, {5: "red"}
VAR_MATCHES, VAR_CLASSES = {1: 2, 4: 5, 7: 0}, {2: "blue", 3: "red"}


def _run(items: list[ItemRecord], *contenders: Contender, **opts: Any) -> dict[str, CostResult]:
    return accuracy_cost(items, contenders, BenchmarkRunOptions(**opts), batch_size=3)


def test_embedder_deltas_match_an_independent_computation() -> None:
    counts: Counter[str] = Counter()
    decode = _decoder(counts, "ref")
    ref = _contender("fp32", REFERENCE_VARIANT, _embedder(REF_MATCHES, REF_CLASSES), decode)
    var = _contender("bf16", BF16, _embedder(VAR_MATCHES, VAR_CLASSES), decode)
    done: list[int] = []
    out = accuracy_cost(
        _items(), [ref, var], BenchmarkRunOptions(seed=3), batch_size=3, progress=done.append
    )
    assert done == [3, 3, 2]  # images per batch

    r_i2t, r_t2i, r_zs, r_top1 = _dense_outcomes(REF_MATCHES, REF_CLASSES)
    v_i2t, v_t2i, v_zs, v_top1 = _dense_outcomes(VAR_MATCHES, VAR_CLASSES)
    # the design, read off by hand: the variant loses images 1 and 4 for i2t
    assert np.flatnonzero(r_i2t != v_i2t).tolist() == [1, 4]

    cost = out["bf16"]
    assert cost.accuracy_items == N and cost.caption_identical_share is None
    assert set(cost.task_metrics) == {I2T, T2I, ZS}
    assert cost.top1_changed == int(np.sum(r_top1 != v_top1)) == 2
    for key, v, r in ((I2T, v_i2t, r_i2t), (T2I, v_t2i, r_t2i), (ZS, v_zs, r_zs)):
        m = cost.task_metrics[key]
        assert m.value == pytest.approx(100 * v.mean())
        assert m.reference == pytest.approx(100 * r.mean())
        assert m.delta == pytest.approx(100 * (v.mean() - r.mean()))
        assert m.changed == int(np.sum(v != r)) and m.n == len(v)
        assert m.test == "mcnemar_exact"
        assert m.p_value == pytest.approx(_mcnemar_p(v, r))
        assert m.delta_ci is not None and m.delta_ci[0] <= m.delta <= m.delta_ci[1]
    assert cost.task_metrics[I2T].delta == pytest.approx(-25.0)
    assert cost.task_metrics[I2T].p_value == pytest.approx(0.5)  # 2 discordant, both one way
    assert cost.task_metrics[ZS].changed == 3  # lost 2 and 3, gained 5

    same = out["fp32"]
    assert same.top1_changed == 0
    for m in same.task_metrics.values():
        assert m.delta == 0.0 and m.delta_ci == (0.0, 0.0) and m.p_value == 1.0 and m.changed == 0


def test_zero_shot_needs_two_categories_and_nothing_without_captions() -> None:
    def run(items: list[ItemRecord]) -> dict[str, CostResult]:
        decode = _decoder(Counter(), "ref")
        ref = _contender("fp32", REFERENCE_VARIANT, _embedder(REF_MATCHES, REF_CLASSES), decode)
        var = _contender("bf16", BF16, _embedder(VAR_MATCHES, VAR_CLASSES), decode)
        return _run(items, ref, var)

    one_class = run(_items(categories=["red"] * N))
    assert set(one_class["bf16"].task_metrics) == {I2T, T2I}
    uncategorised = run(_items(categories=[None] * N))
    assert set(uncategorised["bf16"].task_metrics) == {I2T, T2I}

    no_captions = run(_items(captions=False))
    assert set(no_captions["bf16"].task_metrics) == {ZS}  # categories alone still classify
    assert no_captions["bf16"].top1_changed is None
    assert run(_items(captions=False, categories=["red"] * N)) == {}  # nothing to evaluate


def test_each_image_is_decoded_once_per_decoder_and_n_is_capped() -> None:
    counts: Counter[str] = Counter()
    reference_decode, fast_decode = _decoder(counts, "ref"), _decoder(counts, "fast")
    prompts: list[str] = []
    contenders = [
        _contender("fp32", REFERENCE_VARIANT, _embedder({}, {}, prompts), reference_decode),
        _contender("bf16", BF16, _embedder({}, {}), reference_decode),
        _contender("bf16+channels_last", Variant(Dtype.bf16, channels_last=True),
                   _embedder({}, {}), reference_decode),
        _contender("fp32+fast_decode", Variant(Dtype.fp32, fast_decode=True),
                   _embedder({}, {}), fast_decode),
    ]  # fmt: skip
    out = _run(_items(), *contenders, accuracy_items=5)
    assert counts == Counter({f"{tag}:{i}": 1 for tag in ("ref", "fast") for i in range(5)})
    assert {c.accuracy_items for c in out.values()} == {5}
    assert {c.task_metrics[I2T].n for c in out.values()} == {5}
    assert {c.task_metrics[T2I].n for c in out.values()} == {10}
    # the captions of the five images, then the class prompts (templates x classes)
    assert prompts[:10] == [f"cap {i} {x}" for i in range(5) for x in "ab"]
    assert len(prompts) == 10 + 2 * 3


def test_a_failing_variant_is_left_out_and_the_reference_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(pixels: Any, texts: Sequence[str]) -> Any:
        raise RuntimeError("no bf16 kernel for this op")

    decode = _decoder(Counter(), "ref")
    ok = _embedder({}, {})
    bad = {**ok, names.TEXT_ENCODE: broken}
    ref = _contender("fp32", REFERENCE_VARIANT, ok, decode)
    with caplog.at_level(logging.WARNING):
        out = _run(_items(), ref, _contender("bf16", BF16, bad, decode))
    assert list(out) == ["fp32"]
    assert "bf16" in caplog.text and "no bf16 kernel" in caplog.text

    with pytest.raises(RuntimeError, match="no bf16 kernel"):
        _run(_items(), _contender("fp32", REFERENCE_VARIANT, bad, decode))


# --- captioners --------------------------------------------------------------------------------
needs_java = pytest.mark.skipif(JAVA_MISSING, reason="the PTB tokenizer needs Java")


@needs_java
def test_caption_deltas_and_identical_share() -> None:
    items = _items(4)
    refs = {it.item_id: [t for _, t in it.captions] for it in items}

    def captioner(wrong: set[int]) -> dict[str, Any]:
        def caption(pixels: Any, texts: Sequence[str]) -> list[str]:
            rows = [int(v) for v in pixels[:, 0, 0, 0].tolist()]
            return ["" if i in wrong else f"cap {i} a" for i in rows]

        return {names.CAPTION: caption}

    decode = _decoder(Counter(), "ref")
    ref = _contender("fp32", REFERENCE_VARIANT, captioner(set()), decode)
    var = _contender("bf16", BF16, captioner({2}), decode)
    out = _run(items, ref, var)
    cost = out["bf16"]
    assert cost.caption_identical_share == 0.75 and out["fp32"].caption_identical_share == 1.0
    assert cost.top1_changed is None and set(cost.task_metrics) == {names.CIDER, names.bleu(4)}
    expected = caption_scores(refs, {k: "" if k == 102 else v[0] for k, v in refs.items()})
    for key, m in cost.task_metrics.items():
        assert m.test == "paired_bootstrap" and m.n == 4 and m.changed == 1
        assert m.value == pytest.approx(expected[key].mean())
        assert expected[key][2] == 0.0  # the empty caption scores nothing
        assert m.delta < 0 and m.delta == pytest.approx(m.value - m.reference)
        assert m.delta_ci is not None and m.delta_ci[0] <= m.delta <= m.delta_ci[1]
    for m in out["fp32"].task_metrics.values():
        assert m.delta == 0.0 and m.delta_ci == (0.0, 0.0) and m.changed == 0


@needs_java
def test_caption_scores_skip_meteor() -> None:
    refs = {1: ["a red square on the left"], 2: ["two blue circles"]}
    scored = captioning.score_captions(refs, {1: "a red square", 2: "a circle"}, meteor=False)
    assert scored[names.METEOR] is None and scored["unavailable"] == {names.METEOR: "not requested"}
    assert scored[names.CIDER] is not None
    per = caption_scores(refs, {1: "a red square", 2: "a circle"})
    assert per[names.CIDER] == pytest.approx(
        [100 * scored["per_item"][k][names.CIDER] for k in refs]
    )


# --- real tiny models --------------------------------------------------------------------------
def _real(model_id: str, items: list[ItemRecord], **opts: Any) -> dict[str, CostResult]:
    options = BenchmarkRunOptions(**opts)
    base = load_adapter(model_id, device=Device.cpu)
    contenders = build_contenders(base, [BF16], lambda a: _operations(a, options), decoders(base))
    assert all(c.available for c in contenders)
    return accuracy_cost(items, contenders, options, batch_size=3)


def test_a_tiny_clip_end_to_end(dataset: int, models: dict[str, str]) -> None:
    items = load_items(dataset)
    out = _real(models["clip"], items, accuracy_items=4)
    assert set(out) == {"fp32", "bf16"}
    for cost in out.values():
        assert cost.accuracy_items == 4
        assert set(cost.task_metrics) == {I2T, T2I, ZS}  # the demo's shapes are its categories
        assert cost.task_metrics[I2T].n == 4 and cost.task_metrics[T2I].n == 8
        assert cost.top1_changed is not None and 0 <= cost.top1_changed <= 4
        for m in cost.task_metrics.values():
            assert 0 <= m.value <= 100 and m.p_value is not None and 0 <= m.p_value <= 1
    assert all(m.delta == 0 for m in out["fp32"].task_metrics.values())


@needs_java
def test_a_tiny_captioner_end_to_end(dataset: int, models: dict[str, str]) -> None:
    items = load_items(dataset)
    out = _real(models["caption"], items, accuracy_items=3, max_length=6, num_beams=1)
    assert set(out) == {"fp32", "bf16"}
    for cost in out.values():
        assert cost.accuracy_items == 3 and cost.top1_changed is None
        assert set(cost.task_metrics) == {names.CIDER, names.bleu(4)}
        assert all(m.n == 3 for m in cost.task_metrics.values())
    assert out["fp32"].caption_identical_share == 1.0
    assert out["bf16"].caption_identical_share is not None
