"""Caption metrics equal pycocoevalcap's COCOEvalCap; degeneration; reports; the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_runner import CliResult
from cli_runner import run_cli as run_in_process

from mirada.errors import MiradaError
from mirada.metrics import captioning, degeneration, report

JAVA_MISSING = shutil.which("java") is None
JAVA_REASON = "Java not found: the PTB tokenizer and METEOR 1.5 need it"


def needs_java() -> None:
    if JAVA_MISSING:
        print(JAVA_REASON)
        pytest.skip(JAVA_REASON)


REFS: dict[int, list[str]] = {
    1: ["A man riding a horse on the beach.", "A person rides a brown horse near the sea."],
    2: ["Two dogs play in the snow.", "A pair of dogs running through snow!"],
    3: ["A bowl of salsa next to chips.", "Chips and a bowl of red salsa on a table."],
    4: ["A lake surrounded by mountains.", "A calm body of water with hills behind it."],
}
PREDS: dict[int, str] = {
    1: "a man rides a horse on a beach",
    2: "two dogs\nplaying in the snow",  # newline must not desync the tokenizer / METEOR
    3: "a bowl of salsa and a bowl of salsa",
    4: "a body of water",
}


@pytest.fixture(scope="module")
def scored() -> dict[str, Any]:
    needs_java()
    return captioning.score_captions(REFS, PREDS)


def coco_eval_reference(tmp: Path) -> Any:
    """pycocoevalcap's own COCOEvalCap on a tiny COCO-format file (SPICE stubbed: offline)."""
    from pycocoevalcap import eval as coco_eval
    from pycocotools.coco import COCO

    ann = {
        "images": [{"id": i} for i in REFS],
        "annotations": [
            {"id": n, "image_id": i, "caption": c}
            for n, (i, c) in enumerate((i, c) for i, cs in REFS.items() for c in cs)
        ],
        "info": {},
        "licenses": [],
        "type": "captions",
    }
    (tmp / "ann.json").write_text(json.dumps(ann))
    # COCOEvalCap gets the same whitespace hygiene as score_captions (newline -> space)
    res = [{"image_id": i, "caption": " ".join(c.split())} for i, c in PREDS.items()]
    (tmp / "res.json").write_text(json.dumps(res))
    coco = COCO(str(tmp / "ann.json"))
    coco_res = coco.loadRes(str(tmp / "res.json"))

    class NoSpice:
        def compute_score(self, gts: Any, res: Any) -> tuple[float, list[float]]:
            return 0.0, [0.0] * len(gts)

        def method(self) -> str:
            return "SPICE"

    orig = coco_eval.Spice
    coco_eval.Spice = NoSpice  # type: ignore[assignment,misc]
    try:
        ev = coco_eval.COCOEvalCap(coco, coco_res)
        ev.evaluate()
    finally:
        coco_eval.Spice = orig  # type: ignore[misc]
    return ev


@pytest.mark.slow
def test_matches_official_cocoevalcap(scored: dict[str, Any], tmp_path: Path) -> None:
    ev = coco_eval_reference(tmp_path)
    names = {
        "BLEU-1": "Bleu_1",
        "BLEU-2": "Bleu_2",
        "BLEU-3": "Bleu_3",
        "BLEU-4": "Bleu_4",
        "METEOR": "METEOR",
        "ROUGE-L": "ROUGE_L",
        "CIDEr": "CIDEr",
    }
    assert "unavailable" not in scored
    for ours, theirs in names.items():
        assert scored[ours] == pytest.approx(ev.eval[theirs], abs=1e-6), ours
        for i in REFS:
            assert scored["per_item"][i][ours] == pytest.approx(
                ev.imgToEval[i][theirs], abs=1e-6
            ), (ours, i)
    assert 0 < scored["METEOR"] < 1 and scored["CIDEr"] > 0


def test_validation_names_ids() -> None:
    with pytest.raises(MiradaError, match="ids without a prediction: 2"):
        captioning.score_captions({1: ["a"], 2: ["b"]}, {1: "a"})
    with pytest.raises(MiradaError, match="predictions without references: 9"):
        captioning.score_captions({1: ["a"]}, {1: "a", 9: "b"})
    with pytest.raises(MiradaError, match="no non-empty reference captions for ids 1"):
        captioning.score_captions({1: ["", " "]}, {1: "a"})


def test_an_empty_prediction_scores_zero_as_pycocoevalcap_does() -> None:
    """A model that generated nothing for one image: that image scores 0 (the run is not
    refused), and the corpus scores are pycocoevalcap's own on the empty line."""
    needs_java()
    preds = {**PREDS, 3: "  \n"}
    out = captioning.score_captions(REFS, preds)
    assert all(out["per_item"][3][m] == 0.0 for m in captioning.METRIC_NAMES)
    assert out["CIDEr"] < captioning.score_captions(REFS, PREDS)["CIDEr"]
    flags, _ = degeneration.degeneration({1: "a dog", 2: ""})
    assert flags[2]["degenerate"] and "empty" in flags[2]["reasons"][0]
    assert not flags[1]["degenerate"]


def test_java_missing_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(captioning.shutil, "which", lambda name: None)
    out = captioning.score_captions({1: ["a dog"]}, {1: "a dog"})
    assert out["METEOR"] is None and out["BLEU-1"] is None
    assert set(out["unavailable"]) == set(captioning.METRIC_NAMES)
    assert "Java" in out["unavailable"]["CIDEr"]
    assert out["per_item"][1]["CIDEr"] is None


@pytest.mark.slow
def test_meteor_failure_is_reported_not_substituted(monkeypatch: pytest.MonkeyPatch) -> None:
    needs_java()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("METEOR 1.5 failed: jar missing")

    monkeypatch.setattr(captioning, "_meteor", broken)
    out = captioning.score_captions({1: ["a dog runs"]}, {1: "a dog"})
    assert out["METEOR"] is None and "jar missing" in out["unavailable"]["METEOR"]
    assert out["per_item"][1]["METEOR"] is None
    assert out["BLEU-1"] is not None and out["CIDEr"] is not None


def test_degeneration_flags_study_examples() -> None:
    caps = {
        1: "a bowl of salsa and a bowl of salsa",
        2: "pain pain de pain",
        3: "cheese, let and let",
        4: "a body of water",
        5: "a body of water",
        6: "A body of water.",
        7: "a man riding a horse on a beach",
        8: "a red car and a red truck",
    }
    flags, corpus = degeneration.degeneration(caps)
    for i in (1, 2, 3, 4, 5, 6):
        assert flags[i]["degenerate"], (caps[i], flags[i])
    assert not flags[7]["degenerate"] and not flags[8]["degenerate"]
    assert flags[1]["repeated_ngram_rate"] == pytest.approx(0.5)
    assert "a bowl of salsa" in flags[1]["reasons"][0]
    assert flags[4]["verbatim_repeat"] and not flags[7]["verbatim_repeat"]
    assert any("generic" in r for r in flags[6]["reasons"])
    assert corpus["verbatim_repeat_share"] == pytest.approx(3 / 8)
    assert 0 < corpus["distinct-1"] < corpus["distinct-2"] <= 1
    assert set(flags[1]) == {"repeated_ngram_rate", "verbatim_repeat", "degenerate", "reasons"}


@pytest.mark.slow
def test_build_caption_report(scored: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(captioning, "score_captions", lambda refs, preds: scored)
    rep = report.build_caption_report(REFS, PREDS, n_resamples=200)
    by = {m.name: m for m in rep.metrics}
    assert by["CIDEr"].value == pytest.approx(scored["CIDEr"])
    assert by["CIDEr"].ci_low is not None and by["CIDEr"].ci_low <= by["CIDEr"].value
    assert by["BLEU-4"].ci_low is None and "per_image_mean_ci" in (by["BLEU-4"].details or {})
    for name in ("distinct-1", "distinct-2", "verbatim_repeat_share", "repeated_ngram_rate"):
        assert name in by
    assert [c.item_id for c in rep.captions] == list(REFS)
    assert rep.captions[2].flags and rep.captions[2].flags["degenerate"]
    assert rep.captions[0].scores and set(rep.captions[0].scores) == set(captioning.METRIC_NAMES)
    ctype, data = rep.artifacts["caption_corpus"]
    doc = json.loads(data)
    assert ctype == "application/json" and doc["cider_note"] == captioning.CIDER_NOTE


# ------------------------------------------------------------------------------------------
# CLI


def run_cli(*args: str) -> CliResult:
    # In-process: the CLI then reuses this process's METEOR JVM instead of starting its own.
    return run_in_process("score-captions", *args)


@pytest.mark.slow
def test_cli_simple_json_style(tmp_path: Path, scored: dict[str, Any]) -> None:
    refs = tmp_path / "refs.json"
    preds = tmp_path / "preds.json"
    refs.write_text(json.dumps({str(k): v for k, v in REFS.items()}))
    preds.write_text(json.dumps({str(k): v for k, v in PREDS.items()}))
    proc = run_cli("--references", str(refs), "--predictions", str(preds), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) >= {*captioning.METRIC_NAMES, "per_item"}
    assert out["CIDEr"] == pytest.approx(scored["CIDEr"], abs=1e-9)
    assert out["per_item"]["3"]["METEOR"] == pytest.approx(scored["per_item"][3]["METEOR"])


@pytest.mark.slow
def test_cli_coco_style_human(tmp_path: Path, scored: dict[str, Any]) -> None:
    ann = {
        "images": [{"id": i} for i in REFS],
        "annotations": [{"image_id": i, "caption": c} for i, cs in REFS.items() for c in cs],
    }
    refs = tmp_path / "captions_val.json"
    preds = tmp_path / "results.json"
    refs.write_text(json.dumps(ann))
    preds.write_text(json.dumps([{"image_id": i, "caption": c} for i, c in PREDS.items()]))
    proc = run_cli("--references", str(refs), "--predictions", str(preds))
    assert proc.returncode == 0, proc.stderr
    assert "METEOR 1.5" in proc.stdout and "CIDEr-D" in proc.stdout
    assert f"BLEU-4   {scored['BLEU-4']:11.3f}  pycocoevalcap" in proc.stdout  # as format_metric


@pytest.mark.parametrize(
    ("refs", "preds", "message"),
    [
        ({"1": ["a"], "2": ["b"]}, {"1": "a"}, "preds.json does not match"),
        ({"1": ["a"]}, {"1": ""}, "empty predictions"),
        ({"1": ["a"]}, "{not json", "preds.json is not valid JSON"),
        ({"1": ["a"]}, {"1": 3}, "preds.json: the value for id '1'"),
        ({"1": ["a"]}, [{"image_id": 1}], "preds.json: record 0 lacks"),
    ],
)
def test_cli_errors(tmp_path: Path, refs: Any, preds: Any, message: str) -> None:
    (tmp_path / "refs.json").write_text(json.dumps(refs))
    (tmp_path / "preds.json").write_text(preds if isinstance(preds, str) else json.dumps(preds))
    proc = run_cli(
        "--references", str(tmp_path / "refs.json"), "--predictions", str(tmp_path / "preds.json")
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_report_match_end_to_end() -> None:
    rng = np.random.default_rng(0)
    n, d = 12, 16
    img = rng.standard_normal((n, d)).astype(np.float32)
    ci = np.repeat(np.arange(n), 2)
    txt = img[ci] + rng.standard_normal((2 * n, d)).astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    cats = ["dog"] * 5 + ["cat"] * 6 + [None]
    names = ["dog", "cat", "bird"]
    class_emb = rng.standard_normal((3, 3, d)).astype(np.float32)
    cands = report.rerank_inputs(img, txt, k=6)
    itm = rng.random(cands.shape)
    rep = report.build_match_report(
        img,
        txt,
        ci,
        list(range(100, 100 + n)),
        list(range(1000, 1000 + 2 * n)),
        cats,
        class_emb=class_emb,
        class_names=names,
        rerank_candidates=cands,
        rerank_scores=itm,
        n_resamples=200,
    )
    overall = {m.name: m for m in rep.metrics if m.category is None}
    for name in (
        "i2t_recall@1", "i2t_recall@5", "i2t_recall@10", "t2i_recall@1", "t2i_recall@5",
        "t2i_recall@10", "mrr", "category_accuracy", "zeroshot_accuracy",
        "zeroshot_balanced_accuracy", "i2t_recall@1_reranked", "i2t_recall@5_reranked",
    ):  # fmt: skip
        m = overall[name]
        assert m.value is not None and m.ci_low is not None and m.ci_high is not None, name
        assert m.ci_low <= m.value + 1e-9 and m.value <= m.ci_high + 1e-9, name
    assert "i2t_median_rank" in overall and "t2i_mean_rank" in overall
    per_cat = {(m.category, m.name): m for m in rep.metrics if m.category is not None}
    assert set(per_cat) == {
        (c, name)
        for c in ("dog", "cat")
        for name in ("i2t_recall@1", "category_accuracy", "zeroshot_accuracy")
    }
    assert [it.item_id for it in rep.items] == list(range(100, 112))
    item = rep.items[0]
    assert len(item.details["top"]) == 5 and item.details["top"][0][0] >= 1000  # type: ignore[index]
    assert item.correct == (item.rank == 1)
    assert len(item.details["reranked"]) == 6  # type: ignore[index]
    assert rep.items[-1].details["category_correct"] is None  # type: ignore[index]
    conf = json.loads(rep.artifacts["zeroshot_confusion"][1])
    assert conf["labels"] == names and np.asarray(conf["matrix"]).sum() == 11

    bare = report.build_match_report(
        img, txt, ci, range(n), range(2 * n), [None] * n, n_resamples=50
    )
    assert {m.name for m in bare.metrics}.isdisjoint({"category_accuracy", "zeroshot_accuracy"})
    assert "zeroshot_confusion" not in bare.artifacts


def test_compare_helpers() -> None:
    a = {i: i % 2 == 0 for i in range(40)}
    b = {i: i % 4 == 0 for i in range(2, 40)}
    cmp = report.compare_match_runs(a, b, a_label="CLIP", b_label="BLIP")
    assert cmp["n"] == 38 and cmp["only_a"] == 2 and cmp["test"] == "mcnemar_exact"
    assert cmp["difference"] > 0 and cmp["sentence"].startswith("CLIP vs BLIP: +")
    sc = report.compare_caption_runs({1: 0.5, 2: 0.7, 3: 0.2}, {1: 0.4, 2: 0.5, 3: 0.3})
    assert sc["test"] == "paired_bootstrap" and sc["difference"] == pytest.approx(0.2 / 3)
    with pytest.raises(MiradaError):
        report.compare_match_runs({1: True}, {2: True})


def test_ptb_tokenize_equals_pycocoevalcap_and_keeps_stderr_quiet(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Mirada's quiet copy of PTBTokenizer.tokenize gives the library's tokens exactly, and the
    Java process's "PTBTokenizer tokenized N tokens" line no longer reaches the terminal."""
    needs_java()
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    texts: dict[Any, list[str]] = {
        **{k: list(v) for k, v in REFS.items()},
        "odd": ["Don't stop -- it's 3.5 km (2 mi) away!", "É à l'école, naïve café?"],
        7: ["a  b\tc", "=SUM(A1) <b>bold</b> `tick` |pipe|"],
    }
    capfd.readouterr()
    ours = captioning.ptb_tokenize(texts)
    assert "tokenized" not in capfd.readouterr().err
    theirs = PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in texts.items()})
    assert "tokenized" in capfd.readouterr().err  # the library's chatter, for contrast
    assert ours == theirs
