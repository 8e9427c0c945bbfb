from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from fac_lightning.chat import encode_chat, template_prefix_length

LLAMA3_STYLE_TEMPLATE = (
    "{{ bos_token }}<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023<|eot_id|>"
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")


def word_level_tokenizer() -> PreTrainedTokenizerFast:
    """A second, unrelated tokenizer (word level, Llama-3-style template) built in memory."""
    words = ["[UNK]", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "system",
             "user", "assistant", "Cutting", "Knowledge", "Date", ":", "December", "2023", "a", "Z", "7", "?", "hi"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   unk_token="[UNK]",
                                   additional_special_tokens=["<|start_header_id|>", "<|end_header_id|>"])
    fast.chat_template = LLAMA3_STYLE_TEMPLATE
    return fast


def test_prefix_of_smollm2_is_its_system_header(smollm2_dir):
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    n = template_prefix_length(tok)
    ids = encode_chat(tok, [{"role": "user", "content": "hello there"}])
    prefix = tok.decode(ids[:n])
    assert prefix.startswith("<|im_start|>system\n") and prefix.endswith("<|im_start|>user\n")
    assert "hello" not in prefix and "hello" in tok.decode(ids[n : n + 2])


def test_prefix_of_a_llama3_style_template():
    tok = word_level_tokenizer()
    n = template_prefix_length(tok)
    ids = encode_chat(tok, [{"role": "user", "content": "hi"}])
    # <|begin_of_text|> <|start_header_id|> system <|end_header_id|> Cutting Knowledge [UNK="Date:"] December 2023
    # <|eot_id|> <|start_header_id|> user <|end_header_id|>  -> 13 tokens, then "hi"
    assert n == 13
    assert tok.convert_ids_to_tokens(ids[n]) == "hi"
