"""A small encoder and tokenizer built locally, with no download: for tests and the CPU demo."""

from __future__ import annotations

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def build_tiny_tokenizer(vocab_size: int = 2048, corpus_size: int = 400, seed: int = 0):
    """A WordPiece tokenizer trained on the project's synthetic corpus (deterministic).

    Every ASCII character is in the alphabet, so any text tokenises without ``[UNK]``; words of
    the synthetic corpus are mostly whole tokens, so a completion of L words is about L tokens.
    """
    import string

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from rcollapse.data.synthetic_longform import generate_instruction_answer_pairs

    texts = [t for pair in generate_instruction_answer_pairs(corpus_size, seed=seed) for t in pair]
    texts.append(" Write the answer in an open-ended way. Write either a short answer or a long answer.")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=list(string.ascii_lowercase + string.digits + string.punctuation),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
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
