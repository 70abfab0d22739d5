"""The ``transformers`` zoo preset: transformer families built from their configs at several sizes.

Each family is one transformers model class with the config keys that set its depth, width,
attention heads and feed-forward width (they are named differently per family); each size
overrides those keys, through the transformers front-end's specs
(``transformers:LlamaForCausalLM:num_hidden_layers=4,hidden_size=256,...``), so every model
builds offline with random weights, as the torchvision specs do. Sizes are small (at most 6
layers of width 384): the IR's layer graph and its relative sizes are what the hasher reads, and
the zoo stays minutes to build. Swin is left out: its depths and heads are lists, which a spec's
``key=value`` pairs do not carry.
"""

from __future__ import annotations

from dataclasses import dataclass

# (layers, width, heads): the feed-forward width is 4 x width. The `training` zoo preset has
# TRAINING_SIZES of every family but the held-out ones (held_out_families); the `transformers`
# preset (for evaluation) has every size of every family, so benchmarks/transformer_retrieval.py
# can score sizes and families a checkpoint trained on the first has not seen.
TRAINING_SIZES = ((2, 128, 4), (3, 192, 4), (6, 384, 6), (8, 256, 8))
HELD_OUT_SIZES = ((4, 256, 4),)
SIZES = tuple(sorted(TRAINING_SIZES + HELD_OUT_SIZES))


@dataclass(frozen=True)
class Family:
    name: str
    model_class: str
    layers: tuple[str, ...]  # config keys set to the layer count (an encoder-decoder has two)
    width: str
    heads: tuple[str, ...]
    feed_forward: tuple[str, ...] = ()
    head_dim: str | None = None  # a config key fixing the per-head width, set to width / heads
    key_value_heads: str | None = None  # grouped-query attention: half the heads
    fixed: tuple[tuple[str, object], ...] = ()


FAMILIES = (
    Family("bert", "BertForMaskedLM", ("num_hidden_layers",), "hidden_size", ("num_attention_heads",),
           ("intermediate_size",)),
    Family("roberta", "RobertaForMaskedLM", ("num_hidden_layers",), "hidden_size", ("num_attention_heads",),
           ("intermediate_size",)),
    Family("distilbert", "DistilBertForMaskedLM", ("n_layers",), "dim", ("n_heads",), ("hidden_dim",)),
    Family("albert", "AlbertForMaskedLM", ("num_hidden_layers",), "hidden_size", ("num_attention_heads",),
           ("intermediate_size",)),
    Family("electra", "ElectraForPreTraining", ("num_hidden_layers",), "hidden_size", ("num_attention_heads",),
           ("intermediate_size",)),
    Family("deberta", "DebertaV2ForMaskedLM", ("num_hidden_layers",), "hidden_size", ("num_attention_heads",),
           ("intermediate_size",)),
    Family("gpt2", "GPT2LMHeadModel", ("n_layer",), "n_embd", ("n_head",)),
    Family("gpt_neox", "GPTNeoXForCausalLM", ("num_hidden_layers",), "hidden_size", ("num_attention_heads",),
           ("intermediate_size",)),
    Family("llama", "LlamaForCausalLM", ("num_hidden_layers",), "hidden_size", ("num_attention_heads",),
           ("intermediate_size",), head_dim="head_dim", fixed=(("num_key_value_heads", None),)),
    Family("mistral", "MistralForCausalLM", ("num_hidden_layers",), "hidden_size", ("num_attention_heads",),
           ("intermediate_size",), head_dim="head_dim", key_value_heads="num_key_value_heads"),
    Family("qwen2", "Qwen2ForCausalLM", ("num_hidden_layers",), "hidden_size", ("num_attention_heads",),
           ("intermediate_size",), key_value_heads="num_key_value_heads"),
    Family("phi", "PhiForCausalLM", ("num_hidden_layers",), "hidden_size", ("num_attention_heads",),
           ("intermediate_size",), fixed=(("num_key_value_heads", None),)),
    Family("gemma", "GemmaForCausalLM", ("num_hidden_layers",), "hidden_size", ("num_attention_heads",),
           ("intermediate_size",), head_dim="head_dim", fixed=(("num_key_value_heads", None),)),
    Family("t5", "T5ForConditionalGeneration", ("num_layers", "num_decoder_layers"), "d_model", ("num_heads",),
           ("d_ff",), head_dim="d_kv"),
    Family("bart", "BartForConditionalGeneration", ("encoder_layers", "decoder_layers"), "d_model",
           ("encoder_attention_heads", "decoder_attention_heads"), ("encoder_ffn_dim", "decoder_ffn_dim")),
    Family("vit", "ViTForImageClassification", ("num_hidden_layers",), "hidden_size", ("num_attention_heads",),
           ("intermediate_size",)),
    Family("deit", "DeiTForImageClassification", ("num_hidden_layers",), "hidden_size", ("num_attention_heads",),
           ("intermediate_size",)),
    Family("whisper", "WhisperForConditionalGeneration", ("encoder_layers", "decoder_layers"), "d_model",
           ("encoder_attention_heads", "decoder_attention_heads"), ("encoder_ffn_dim", "decoder_ffn_dim")),
    Family("wav2vec2", "Wav2Vec2ForCTC", ("num_hidden_layers",), "hidden_size", ("num_attention_heads",),
           ("intermediate_size",)),
)


def overrides(family: Family, layers: int, width: int, heads: int) -> dict[str, object]:
    """The config keys one size sets for one family."""
    values: dict[str, object] = {key: layers for key in family.layers}
    values[family.width] = width
    values.update({key: heads for key in family.heads})
    values.update({key: 4 * width for key in family.feed_forward})
    if family.head_dim:
        values[family.head_dim] = width // heads
    if family.key_value_heads:
        values[family.key_value_heads] = heads // 2
    for key, value in family.fixed:
        values[key] = heads if value is None else value  # None: as many as the heads (no grouping)
    return values


def spec(family: Family, layers: int, width: int, heads: int) -> str:
    """The transformers front-end's spec of one size of one family."""
    pairs = ",".join(f"{key}={value}" for key, value in overrides(family, layers, width, heads).items())
    return f"transformers:{family.model_class}:{pairs}"


def held_out_families() -> list[str]:
    """Every fifth family in sorted order, as the ``families`` split holds out (hnn.zoo.splits)."""
    from hnn.zoo.splits import every_fifth

    return every_fifth(sorted(family.name for family in FAMILIES))


def models(sizes=SIZES, families=None) -> list[tuple[str, str, str]]:
    """(name, family, spec) of the families (default all) at ``sizes`` (hnn.zoo.presets makes them ZooEntries)."""
    chosen = [family for family in FAMILIES if families is None or family.name in families]
    return [(model_name(family.name, layers, width), family.name, spec(family, layers, width, heads))
            for family in chosen for layers, width, heads in sizes]


def training_models() -> list[tuple[str, str, str]]:
    """The models the shipped checkpoints train on: TRAINING_SIZES of the families not held out."""
    held = set(held_out_families())
    return models(TRAINING_SIZES, [family.name for family in FAMILIES if family.name not in held])


def model_name(family: str, layers: int, width: int) -> str:
    return f"{family}-{layers}x{width}"
