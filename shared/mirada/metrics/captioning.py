"""The official COCO caption metrics, computed by pycocoevalcap's own classes.

Pipeline (as `pycocoevalcap.eval.COCOEvalCap.evaluate`, without SPICE, which needs a
Stanford CoreNLP download and cannot run offline): PTBTokenizer on references, then on
predictions; then Bleu(4) (closest reference length), Meteor() (METEOR 1.5 jar, `-l en -norm`),
Rouge() (ROUGE-L, LCS F-score beta=1.2) and Cider() (CIDEr-D, sigma=6, clipped, x10).
Scores are on pycocoevalcap's scale: fractions, CIDEr unscaled (1.335 = "133.5").

Input hygiene (not a change of metric): captions have every run of whitespace, including
newlines and Unicode line separators, collapsed to one space before tokenisation, because a
line break inside a caption shifts the PTB tokenizer's line-per-caption output and desyncs the
METEOR subprocess (which then blocks forever). "|||" (METEOR's field separator) is removed
from references the way pycocoevalcap already removes it from predictions.

Java: the PTB tokenizer (Stanford CoreNLP) and METEOR 1.5 run on Java.
- No Java (or the tokenizer fails): we REFUSE rather than fall back. Every metric is returned
  with value None and a reason in "unavailable"; there is no home-made tokenisation under the
  official names (numbers would silently differ from published ones). The CLI turns this into
  an error message.
- Java present but METEOR fails or hangs (timeout): METEOR is None with the reason; the other
  metrics are still official. A METEOR process that failed is closed; a healthy one is
  reused by later calls in the same process and closed after 5 idle minutes.
"""

from __future__ import annotations

import atexit
import shutil
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from mirada.errors import MiradaError
from mirada.metrics.names import CAPTION_METRICS, CIDER, METEOR, ROUGE_L, bleu

METRIC_NAMES = CAPTION_METRICS

IMPLEMENTATIONS = {
    **{
        bleu(n): "pycocoevalcap Bleu(4), corpus-level, closest reference length"
        for n in (1, 2, 3, 4)
    },
    METEOR: "METEOR 1.5 (Java jar, -l en -norm) via pycocoevalcap",
    ROUGE_L: "pycocoevalcap Rouge(), LCS F-score, beta=1.2, best reference",
    CIDER: "CIDEr-D (sigma=6, clipped, x10), IDF from this set's own references",
}
TOKENIZATION = "PTB tokenizer (Stanford CoreNLP 3.4.1, Java), lower-cased, punctuation removed"

CIDER_NOTE = (
    "CIDEr-D weights n-grams by an IDF computed from the references of the evaluated set "
    "itself, not from COCO. On a small or domain-specific dataset the IDF is different, so "
    "CIDEr values are comparable only between runs on the same reference set, never with "
    "published COCO numbers (e.g. BLIP's 133.5 on the Karpathy test split)."
)

METEOR_TIMEOUT_S = 120.0


def _clean(text: str) -> str:
    return " ".join(str(text).split())


def _fmt_ids(ids: Sequence[Any]) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:10])
    more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    return f"{shown}{more}"


def validate(
    references: Mapping[Any, Sequence[str]], predictions: Mapping[Any, str]
) -> tuple[dict[Any, list[str]], dict[Any, str]]:
    """Cleaned (references, predictions) in references' id order, or MiradaError naming ids.

    An empty prediction is kept: a model that generated nothing scored 0 on every metric
    (pycocoevalcap scores an empty line so), and refusing it would fail a whole caption run
    over one image. `mirada score-captions` refuses empty entries in a user's file itself."""
    if not references:
        raise MiradaError("no references given")
    if not predictions:
        raise MiradaError("no predictions given")
    missing = [k for k in references if k not in predictions]
    extra = [k for k in predictions if k not in references]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"ids without a prediction: {_fmt_ids(missing)}")
        if extra:
            parts.append(f"predictions without references: {_fmt_ids(extra)}")
        raise MiradaError("references and predictions must have the same ids; " + "; ".join(parts))
    refs: dict[Any, list[str]] = {}
    preds: dict[Any, str] = {}
    empty_ref = []
    for key, value in references.items():
        if isinstance(value, str):
            value = [value]
        cleaned = [_clean(r) for r in value if isinstance(r, str) and _clean(r)]
        if not cleaned:
            empty_ref.append(key)
        refs[key] = cleaned
        pred = predictions[key]
        preds[key] = _clean(pred) if isinstance(pred, str) else ""
    if empty_ref:
        raise MiradaError(f"no non-empty reference captions for ids {_fmt_ids(empty_ref)}")
    return refs, preds


def ptb_tokenize(captions: Mapping[Any, Sequence[str]]) -> dict[Any, list[str]]:
    """pycocoevalcap's `PTBTokenizer().tokenize` (the same CoreNLP jar, flags and punctuation
    filter), with two differences that change no token: the Java process's stderr is captured
    (the library lets "PTBTokenizer tokenized N tokens at ..." reach the user's terminal on
    every call), and the temporary file goes to the system temp directory (the library writes
    it into its own package directory, which fails on a read-only install and races between
    concurrent processes). tests/test_metrics_captioning.py checks equality with the library.

    `captions`: key -> captions, each already on one line (`validate` collapses whitespace)."""
    import os
    import subprocess
    import tempfile

    from pycocoevalcap.tokenizer import ptbtokenizer as ptb

    jar = os.path.join(
        os.path.dirname(os.path.abspath(ptb.__file__)), ptb.STANFORD_CORENLP_3_4_1_JAR
    )
    order = [k for k, caps in captions.items() for _ in caps]
    text = "\n".join(c.replace("\n", " ") for caps in captions.values() for c in caps)
    with tempfile.TemporaryDirectory(prefix="mirada-ptb-") as tmp:
        path = os.path.join(tmp, "captions.txt")
        with open(path, "wb") as fh:
            fh.write(text.encode())
        cmd = ["java", "-cp", jar, "edu.stanford.nlp.process.PTBTokenizer"]
        done = subprocess.run(
            [*cmd, "-preserveLines", "-lowerCase", path], capture_output=True, check=False
        )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip()[-300:]
        raise RuntimeError(f"the PTB tokenizer exited with {done.returncode}: {tail}")
    out: dict[Any, list[str]] = {}
    for key, line in zip(order, done.stdout.decode().split("\n"), strict=False):
        words = [w for w in line.rstrip().split(" ") if w not in ptb.PUNCTUATIONS]
        out.setdefault(key, []).append(" ".join(words))
    return out


def _unavailable_all(keys: Sequence[Any], reason: str) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(METRIC_NAMES)
    out["per_item"] = {k: dict.fromkeys(METRIC_NAMES) for k in keys}
    out["unavailable"] = dict.fromkeys(METRIC_NAMES, reason)
    return out


def java_unavailable_reason() -> str | None:
    if shutil.which("java") is None:
        return (
            "Java was not found on PATH; the official COCO tokenisation (PTB tokenizer, "
            "Stanford CoreNLP) and METEOR 1.5 need Java 8+. Install a JRE (e.g. "
            "apt-get install default-jre-headless) to compute caption metrics."
        )
    return None


def _close_meteor(meteor: Any) -> None:
    proc = getattr(meteor, "meteor_p", None)
    if proc is None:
        return
    try:
        if proc.stdin:
            proc.stdin.close()
    except OSError:
        pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    # pycocoevalcap's __del__ re-acquires this lock; a scorer thread that died mid-call never
    # released it, so give the object a fresh one to keep garbage collection from blocking.
    meteor.lock = threading.Lock()


class _SharedMeteor:
    """One METEOR 1.5 JVM per process, reused across calls and closed after a quiet spell.

    Starting the jar takes 10-20 s here (it loads its paraphrase tables) while a call on a
    running one takes about 0.04 s. Its stdio protocol is stateless between EVAL lines (each
    EVAL carries its own statistics), so reuse changes no score. A call that fails or times out
    closes the process; the next call starts a fresh one.
    """

    IDLE_CLOSE_S = 300.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._meteor: Any = None
        self._timer: threading.Timer | None = None

    def score(
        self, gts: dict[Any, list[str]], res: dict[Any, list[str]], timeout: float
    ) -> tuple[float, list[float]]:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            meteor = self._running()
            box: dict[str, Any] = {}

            def work() -> None:
                try:
                    box["result"] = meteor.compute_score(gts, res)
                except BaseException as exc:  # reported to the caller below
                    box["error"] = exc

            thread = threading.Thread(target=work, name="meteor", daemon=True)
            thread.start()
            thread.join(timeout)
            if thread.is_alive():
                self._close_locked()  # unblocks the reader with EOF
                thread.join(5)
                raise TimeoutError(f"METEOR 1.5 did not answer within {timeout:.0f} s")
            if "error" in box:
                self._close_locked()
                err = box["error"]
                raise RuntimeError(f"METEOR 1.5 failed: {type(err).__name__}: {err}")
            self._timer = threading.Timer(self.IDLE_CLOSE_S, self.close)
            self._timer.daemon = True
            self._timer.start()
        score, scores = box["result"]
        return float(score), [float(s) for s in scores]

    def _running(self) -> Any:
        proc = getattr(self._meteor, "meteor_p", None)
        if proc is None or proc.poll() is not None:
            from pycocoevalcap.meteor.meteor import Meteor

            self._meteor = Meteor()
        return self._meteor

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._meteor is not None:
            _close_meteor(self._meteor)
            self._meteor = None


_SHARED_METEOR = _SharedMeteor()
atexit.register(_SHARED_METEOR.close)


def _meteor(
    gts: dict[Any, list[str]], res: dict[Any, list[str]], timeout: float
) -> tuple[float, list[float]]:
    gts = {k: [r.replace("|||", " ") for r in v] for k, v in gts.items()}
    return _SHARED_METEOR.score(gts, res, timeout)


def score_captions(
    references: Mapping[Any, Sequence[str]],
    predictions: Mapping[Any, str],
    *,
    meteor_timeout: float | None = None,
    meteor: bool = True,
) -> dict[str, Any]:
    """Official COCO caption metrics for one prediction per id against its references.

    Returns {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr": corpus score
    or None, "per_item": {id: {same keys}}} plus "unavailable": {metric: reason} when any
    metric could not be computed; `meteor=False` skips METEOR (its JVM takes 10-20 s to start),
    which is then unavailable as "not requested". Mismatched ids or empty
    references raise MiradaError naming the ids.
    """
    refs, preds = validate(references, predictions)
    keys = list(refs)
    reason = java_unavailable_reason()
    if reason:
        return _unavailable_all(keys, reason)

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    try:
        gts = ptb_tokenize({k: list(refs[k]) for k in keys})
        res = ptb_tokenize({k: [preds[k]] for k in keys})
        if set(gts) != set(keys) or set(res) != set(keys):
            raise RuntimeError("tokenizer output does not line up with the captions")
    except Exception as exc:  # Java present but CoreNLP failed: refuse, do not guess
        return _unavailable_all(
            keys, f"the official PTB tokenisation failed ({type(exc).__name__}: {exc})"
        )
    gts = {k: gts[k] for k in keys}
    res = {k: res[k] for k in keys}

    corpus: dict[str, float | None] = {}
    per: dict[str, list[float | None]] = {}
    unavailable: dict[str, str] = {}

    bleu_corpus, bleus = Bleu(4).compute_score(gts, res, verbose=0)
    for i in range(4):
        corpus[bleu(i + 1)] = float(bleu_corpus[i])
        per[bleu(i + 1)] = [float(s) for s in bleus[i]]
    timeout = meteor_timeout if meteor_timeout is not None else METEOR_TIMEOUT_S + 0.05 * len(keys)
    if not meteor:
        corpus[METEOR], per[METEOR] = None, [None] * len(keys)
        unavailable[METEOR] = "not requested"
    else:
        try:
            corpus[METEOR], per[METEOR] = _meteor(gts, res, timeout)  # type: ignore[assignment]
        except Exception as exc:
            corpus[METEOR] = None
            per[METEOR] = [None] * len(keys)
            unavailable[METEOR] = f"{type(exc).__name__}: {exc}"
    rouge, rouges = Rouge().compute_score(gts, res)
    corpus[ROUGE_L], per[ROUGE_L] = float(rouge), [float(s) for s in rouges]
    cider, ciders = Cider().compute_score(gts, res)
    corpus[CIDER], per[CIDER] = float(cider), [float(s) for s in ciders]

    out: dict[str, Any] = {name: corpus[name] for name in METRIC_NAMES}
    out["per_item"] = {k: {name: per[name][i] for name in METRIC_NAMES} for i, k in enumerate(keys)}
    if unavailable:
        out["unavailable"] = unavailable
    return out
