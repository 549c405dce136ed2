"""Build a tiny Llama model and tokenizer on disk, with no download.

vLLM (CPU build) loads it like any Hugging Face model: ``LLM(model=path)``.
The weights are random, so the text is meaningless; lengths are controlled with
``max_tokens`` and ``ignore_eos``. Shapes follow the CPU attention backend's
constraints (head_dim 64; 16 fails). The tokenizer is a byte-level BPE trained
on a few built-in sentences, with a chat template so chat endpoints work.

    python -m autellix_ray.tiny_model models/tiny-llama
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

HIDDEN_SIZE = 256
NUM_HEADS = 4  # head_dim 64
NUM_LAYERS = 4
VOCAB_SIZE = 512
MAX_POSITIONS = 4096
SEED = 0

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
_CORPUS = [
    "An agent plans, calls a tool, reads the result and calls the model again.",
    "Program-level attained service schedules calls by the service their program received.",
    "The quick brown fox jumps over the lazy dog. 0123456789 + - * / = ( ) [ ] { }",
    "system user assistant tool: search, calculate, read file, write file, answer.",
]
_MARKER = "autellix-tiny-model.json"


def default_tiny_model_dir() -> Path:
    """Where the tiny model is built once per machine: ``$AUTELLIX_TINY_MODEL`` or the user cache."""
    return Path(os.environ.get("AUTELLIX_TINY_MODEL", Path.home() / ".cache" / "autellix-ray" / "tiny-llama"))


def default_tiny_model_path() -> str:
    """The tiny model at its default place, built first if it is not there yet (no download)."""
    return str(build_tiny_model(default_tiny_model_dir()))


def build_tiny_model(path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the model to ``path`` (skipped if a complete one is already there)."""
    path = Path(path)
    marker = path / _MARKER
    if marker.exists() and not overwrite:
        return path
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    special = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 8, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)

    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=HIDDEN_SIZE * 2,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    LlamaForCausalLM(config).to(torch.float32).save_pretrained(path)
    marker.write_text(json.dumps({"hidden_size": HIDDEN_SIZE, "layers": NUM_LAYERS, "seed": SEED}))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the tiny test model (no download).")
    parser.add_argument("path", nargs="?", default="models/tiny-llama")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    print(build_tiny_model(args.path, overwrite=args.overwrite))


if __name__ == "__main__":
    main()
