"""The demo models' tokenizers: a CLIP-style byte-level BPE (trained once, committed) and
a hand-written BERT vocabulary for BLIP, both covering every word a caption can use."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from mirada.demo import synthetic as syn
from mirada.demo.training.common import MAX_TEXT_LEN

CLIP_BPE_DIR = Path(__file__).resolve().parents[1] / "assets" / "clip-bpe"
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
BLIP_SPECIALS_HEAD = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BLIP_SPECIALS_TAIL = ["[DEC]", "[ENC]"]

logger = logging.getLogger(__name__)


def caption_vocabulary() -> list[str]:
    """Every word any caption can use, sorted."""
    words = {"a", "an", "on", "background", "with"}
    words |= set(syn.SHAPES) | set(syn.COLOURS) | set(syn.SIZES) | set(syn.BACKGROUNDS)
    for rel, (conv, _) in syn.RELATIONS.items():
        words |= set(rel.split()) | set(conv.split())
    return sorted(words)


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's byte -> printable character table, in CLIP's vocabulary order."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def train_clip_bpe(out_dir: Path = CLIP_BPE_DIR) -> Path:
    """Train a CLIP-style BPE on the caption vocabulary; write vocab.json + merges.txt.

    The merges come from ``tokenizers``' trainer; the vocabulary is laid out as OpenAI CLIP's
    is (256 byte symbols, the same with ``</w>``, one token per merge, then ``<|startoftext|>``
    and ``<|endoftext|>``), so any text tokenizes without unknown tokens. Not reproducible
    between runs: run once and commit the files.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>", unk_token=EOT))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                behavior="removed",
                invert=True,
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=[SOT, EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    corpus = [c for s in syn.train_scenes(5000) for c in s.captions]
    tok.train_from_iterator(corpus, trainer)
    with tempfile.TemporaryDirectory() as tmp:
        tok.model.save(tmp)
        lines = Path(tmp, "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#")]
    byte_chars = _bytes_to_unicode()
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
    tokens += [SOT, EOT]
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate(tokens)}
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out_dir / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    return out_dir


def load_clip_tokenizer(bpe_dir: Path = CLIP_BPE_DIR) -> Any:
    from transformers import CLIPTokenizer

    if not (bpe_dir / "vocab.json").exists():
        logger.info(f"no committed BPE in {bpe_dir}: training one (commit it)")
        train_clip_bpe(bpe_dir)
    vocab = json.loads((bpe_dir / "vocab.json").read_text(encoding="utf-8"))
    merges = [
        tuple(line.split(" "))
        for line in (bpe_dir / "merges.txt").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TEXT_LEN)
    for cap in syn.demo_scenes(20)[0].captions:  # every word is one token, nothing unknown
        ids = tok(cap)["input_ids"]
        framed = ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
        if not framed or len(ids) != len(cap.split()) + 2:
            raise RuntimeError(
                f"the BPE in {bpe_dir} does not give one token per word of {cap!r}: "
                f"{tok.convert_ids_to_tokens(ids)}"
            )
    return tok


def write_blip_vocab(path: Path) -> Path:
    tokens = BLIP_SPECIALS_HEAD + caption_vocabulary() + BLIP_SPECIALS_TAIL
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def blip_tokenizer(vocab_txt: Path) -> Any:
    from transformers import BertTokenizer

    return BertTokenizer(
        vocab=str(vocab_txt),
        bos_token="[DEC]",
        extra_special_tokens=["[ENC]"],
        model_max_length=MAX_TEXT_LEN,
    )
