"""Tiny random captioning VLMs (the `hf-vlm` family) saved like real checkpoints: GIT, BLIP-2
(OPT), LLaVA and Qwen2-VL, hidden size 32, 1-2 layers, 32x32 images, built offline in well
under a second each.

Their tokenizers are word-level (`tokenizers` WordLevel over a few words), written here so
nothing is downloaded: the LLaVA and Qwen2-VL ones carry a chat template, as the real
processors do. Plumbing only: random models say nothing about caption quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

IMAGE = 32
WORDS = (
    "a an the photo of picture cat dog red blue green square circle star on left right to "
    "background gray small big and with two one describe this image in sentence user "
    "assistant system : . , ?"
).split()

# LLaVA-1.5's conversation form ("USER: <image>\n... ASSISTANT:"), as a chat template over
# transformers' typed message contents.
LLAVA_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }} : "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image> "
    "{% elif item['type'] == 'text' %}{{ item['text'] }} {% endif %}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}assistant : {% endif %}"
)
# Qwen2-VL's form: <|im_start|>role ... <|vision_start|><|image_pad|><|vision_end|> ...
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|> {{ message['role'] }} "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}"
    "<|vision_start|> <|image_pad|> <|vision_end|> "
    "{% elif item['type'] == 'text' %}{{ item['text'] }} {% endif %}{% endfor %}"
    "<|im_end|> {% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)


def word_tokenizer(
    specials: list[str], *, bos: str, eos: str, pad: str, sep: str | None = None, **named: str
) -> Any:
    """A fast word-level tokenizer: WORDS plus `specials` (never split), `bos` prepended and,
    like BERT's [SEP], `sep` appended to every text. `named` sets further special-token
    attributes (e.g. image_token='<image>')."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(dict.fromkeys([*specials, "<unk>", *WORDS]))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A" + (f" {sep}" if sep else ""),
        special_tokens=[(t, vocab[t]) for t in (bos, sep) if t],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token="<unk>",
        additional_special_tokens=[s for s in specials if s not in (bos, eos, pad)],
    )
    for attr, value in named.items():
        setattr(fast, attr, value)
    return fast


def _text(tokenizer: Any, **extra: Any) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 256,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **extra,
    }


_VISION: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": IMAGE,
    "patch_size": 8,
}


def _save(directory: Path, model: Any, processor: Any) -> Path:
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def make_git(directory: Path, seed: int = 0) -> Path:
    """GIT (GitForCausalLM): a CLIP image encoder prefixed to a BERT-style decoder; its tokenizer
    wraps texts in [CLS] ... [SEP] as GIT's BERT tokenizer does."""
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    tokenizer = word_tokenizer(
        ["[PAD]", "[CLS]", "[SEP]"], bos="[CLS]", eos="[SEP]", pad="[PAD]", sep="[SEP]"
    )
    config = GitConfig(vision_config=_VISION, **_text(tokenizer))
    torch.manual_seed(seed)
    model = GitForCausalLM(config).eval()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}
    )
    return _save(directory, model, GitProcessor(image_processor, tokenizer))


def make_blip2(directory: Path, seed: int = 0) -> Path:
    """BLIP-2 with an OPT decoder (Blip2ForConditionalGeneration), 4 query tokens; it ends a
    caption at a newline, as blip2-opt-2.7b does (eos_token_id 50118)."""
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
    )

    tokenizer = word_tokenizer(
        ["<pad>", "</s>", "<image>", "\n"], bos="</s>", eos="\n", pad="<pad>"
    )
    config = Blip2Config(
        vision_config={**_VISION, "initializer_range": 0.02},
        qformer_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "encoder_hidden_size": 32,
            "vocab_size": 64,
        },
        text_config={**_text(tokenizer), "ffn_dim": 64, "word_embed_proj_dim": 32},
        num_query_tokens=4,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config).eval()
    processor = Blip2Processor(
        BlipImageProcessor(size={"height": IMAGE, "width": IMAGE}), tokenizer, num_query_tokens=4
    )
    return _save(directory, model, processor)


def make_llava(directory: Path, seed: int = 0, *, words_only: bool = False) -> Path:
    """LLaVA (a CLIP vision tower, a projector and a Llama decoder) with a chat template.
    `words_only`: the checkpoint's generation config suppresses the special tokens and asks
    for at least 3 new tokens, so even random weights caption in words."""
    from transformers import (
        CLIPImageProcessor,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = word_tokenizer(
        ["<pad>", "<s>", "</s>", "<image>"],
        bos="<s>",
        eos="</s>",
        pad="<pad>",
        image_token="<image>",
    )
    config = LlavaConfig(
        vision_config={**_VISION, "model_type": "clip_vision_model"},
        text_config={**_text(tokenizer), "model_type": "llama", "num_key_value_heads": 2},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    if words_only:
        specials = ["<pad>", "<s>", "</s>", "<image>", "<unk>"]
        model.generation_config.suppress_tokens = tokenizer.convert_tokens_to_ids(specials)
        model.generation_config.min_new_tokens = 3
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}
    )
    processor = LlavaProcessor(
        image_processor,
        tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_TEMPLATE,
        image_token="<image>",
        num_additional_image_tokens=1,  # the CLS token, dropped by the "default" strategy
    )
    return _save(directory, model, processor)


def make_qwen2_vl(directory: Path, seed: int = 0) -> Path:
    """Qwen2-VL (dynamic resolution: the processor's patch count follows the image size) with
    a chat template; images of 16x16 to 64x64 pixels, 8 px patches merged 2x2."""
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>"]
    specials += ["<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tokenizer = word_tokenizer(
        specials,
        bos="<|im_start|>",
        eos="<|im_end|>",
        pad="<|endoftext|>",
        image_token="<|image_pad|>",
        video_token="<|video_pad|>",
    )
    ids = tokenizer.convert_tokens_to_ids
    patches = {"patch_size": 8, "temporal_patch_size": 2}
    config = Qwen2VLConfig(
        vision_config={
            **patches,
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 32,
            "num_heads": 2,
            "mlp_ratio": 2,
            "spatial_merge_size": 2,
        },
        text_config={
            **_text(tokenizer),
            "num_key_value_heads": 2,
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(
            **patches, merge_size=2, min_pixels=16 * 16, max_pixels=64 * 64
        ),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**patches, merge_size=2),
        chat_template=QWEN_TEMPLATE,
    )
    return _save(directory, model, processor)
