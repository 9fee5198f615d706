"""PPO prompts and hub names: the IMDB loader on a local copy, the offline errors, prompt cutting."""

import numpy as np
import pandas as pd
import pytest

from rcollapse.data.hub_access import DataUnavailableError
from rcollapse.data.prompt_sources import ImdbPromptsSource, PromptsOfflineSource, cut_prompt
from rcollapse.models.hub_models import ModelUnavailableError
from rcollapse.models.judges import SequenceClassifierJudge
from rcollapse.models.policy import load_pretrained_causal_lm


def test_imdb_local_copy_gives_2_to_8_word_prompts_without_markup(tmp_path):
    root = tmp_path / "imdb" / "plain_text"
    root.mkdir(parents=True)
    text = "A<br />great film<br /><br />with a cast that never once stops being good and more words"
    for split in ("train", "test"):
        pd.DataFrame({"text": [text] * 20, "label": [1] * 20}).to_parquet(root / f"{split}-00000-of-00001.parquet")
    prompts = ImdbPromptsSource(path=str(tmp_path / "imdb"), num_test=5, prompt_unit="words").load()
    assert len(prompts["train"]) == 20 and len(prompts["test"]) == 5
    for prompt in prompts["train"]:
        assert 2 <= len(prompt.split()) <= 8 and "<br" not in prompt and prompt.startswith("A great")


def test_prompt_cutting_and_offline_prompts():
    rng = np.random.default_rng(0)
    lengths = {len(cut_prompt("one two three four five six seven eight nine ten", rng).split()) for _ in range(200)}
    assert lengths == set(range(2, 9))
    data = PromptsOfflineSource(num_train=10, num_test=3).load()
    assert len(data["train"]) == 10 and all(2 <= len(p.split()) <= 8 for p in data["train"])


def test_hub_names_fail_fast_offline_with_the_key_to_set():
    with pytest.raises(DataUnavailableError) as err:
        ImdbPromptsSource(prompt_unit="words").load()
    message = str(err.value)
    assert "Cannot load data set 'stanfordnlp/imdb' (dataset.path):" in message
    assert "`dataset.path=/data/imdb`" in message and "`dataset=prompts_offline`" in message
    with pytest.raises(ModelUnavailableError, match="model.name_or_path"):
        load_pretrained_causal_lm("openai-community/gpt2")
    with pytest.raises(ModelUnavailableError, match="judge.name_or_path"):
        SequenceClassifierJudge()


def _tiny_llama_judge_dir(tmp_path, pad_token):
    """A local directory in FsfairX's layout: a Llama sequence classifier (1 label) and a tokenizer
    with a chat template that ends every turn with EOS."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rcollapse.models.tiny_encoder import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    tokenizer.bos_token, tokenizer.eos_token = "[CLS]", "[SEP]"
    tokenizer.pad_token = pad_token
    tokenizer.chat_template = ("{{ bos_token }}{% for m in messages %}{{ m['role'] }} : {{ m['content'] }}"
                               "{{ eos_token }}{% endfor %}")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "judge")
    tokenizer.save_pretrained(tmp_path / "judge")
    return tmp_path / "judge"


@pytest.mark.parametrize("pad_token", ["[SEP]", None])  # pad = EOS (the trap), and no pad token (Llama 3)
def test_local_judge_scores_each_response_at_its_last_token_alone_or_in_a_padded_batch(tmp_path, pad_token):
    import torch

    judge = SequenceClassifierJudge(name_or_path=str(_tiny_llama_judge_dir(tmp_path, pad_token)), batch_size=3,
                                    dtype="float32", device="cpu")
    prompts = ["the movie", "i watched this film last night", "a story"]
    responses = ["was great", "and it was long and dull", "of love"]
    batched = judge.score(prompts, responses)
    alone = [judge.score([p], [r])[0] for p, r in zip(prompts, responses)]
    assert batched == pytest.approx(alone, abs=1e-5)
    # reference: the model's own logit at the last position of the unpadded chat text
    text = judge.tokenizer.apply_chat_template([{"role": "user", "content": prompts[1]},
                                                {"role": "assistant", "content": responses[1]}], tokenize=False)
    ids = judge.tokenizer(text[len("[CLS]"):], return_tensors="pt")["input_ids"]
    assert ids[0, 0] == judge.tokenizer.bos_token_id and (ids[0] == judge.tokenizer.bos_token_id).sum() == 1
    assert ids[0, -1] == judge.tokenizer.eos_token_id  # the template's last token: EOS
    with torch.no_grad():
        hidden = judge.model.model(input_ids=ids).last_hidden_state
        expected = judge.model.score(hidden[:, -1])[0, 0]
    assert batched[1] == pytest.approx(float(expected), abs=1e-5)
    assert len(set(round(s, 6) for s in batched)) == 3
