"""A small encoder and tokenizer built locally, with no download: for tests and the CPU demo."""

from __future__ import annotations

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def tiny_vocabulary() -> list[str]:
    """The tiny tokenizer's vocabulary, fixed and ordered: special tokens, every printable ASCII
    character (alone and as a ``##`` continuation), then the synthetic corpus's words, the
    English words of its templates and of the length task's suffixes, and the generated
    reviews' words."""
    import string

    from rcollapse.data.length_task import CLOSED_SUFFIX, OPEN_SUFFIX
    from rcollapse.data.synthetic_longform import FUNCTION_WORDS, TEMPLATE_WORDS, lexicon
    from rcollapse.data.synthetic_reviews import REVIEW_WORDS

    chars = string.ascii_lowercase + string.digits + string.punctuation
    words = [*FUNCTION_WORDS, *TEMPLATE_WORDS, *(OPEN_SUFFIX + CLOSED_SUFFIX).lower().replace(".", " ").split()]
    words += lexicon()
    words += REVIEW_WORDS  # appended last: the earlier words keep their ids
    vocab = list(SPECIAL_TOKENS) + list(chars) + [f"##{c}" for c in chars]
    seen = set(vocab)
    for word in words:
        if word not in seen:
            seen.add(word)
            vocab.append(word)
    return vocab


def build_tiny_tokenizer():
    """A WordPiece tokenizer over :func:`tiny_vocabulary`: deterministic, built with no training.

    Words of the synthetic corpus are whole tokens, so a completion of L words is about L tokens;
    any other text falls back to word pieces down to single characters, never ``[UNK]`` for ASCII.
    The same arguments give the same token ids on every machine, so checkpoints stay valid.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(tiny_vocabulary())}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def build_tiny_encoder(
    tokenizer,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 128,
    max_position_embeddings: int = 512,
    dropout: float = 0.0,
):
    """A randomly initialised BERT encoder sized from the arguments (vocabulary from ``tokenizer``)."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        pad_token_id=tokenizer.pad_token_id,
        type_vocab_size=2,
    )
    return BertModel(config, add_pooling_layer=False)


def build_encoder_from_config(tokenizer, config_class: str, **config_kwargs):
    """Any Hugging Face encoder built from its config class, randomly initialised (no download).

    E.g. ``config_class="DebertaV2Config"`` with deberta-v3-base's sizes for benchmarks at real
    model size without the hub.
    """
    import transformers

    config = getattr(transformers, config_class)(vocab_size=len(tokenizer), **config_kwargs)
    return transformers.AutoModel.from_config(config)
