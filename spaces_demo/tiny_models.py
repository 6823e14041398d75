"""Make a tiny chat model and a tiny spam classifier (random weights) to run the demo without the recipes.

    python spaces_demo/tiny_models.py /tmp/demo-models   # writes /tmp/demo-models/chat and /tmp/demo-models/spam

Used by bench/demo_load.py and spaces_demo/screenshots.py (through ``launch_local``); the tests build their own.
"""

import os
import socket
import sys
import tempfile

import torch

from hfgpt import GPTScratchConfig, GPTScratchForCausalLM, GPTScratchForSequenceClassification
from hfgpt.data.instructions import add_chat_template
from hfgpt.tokenization import special_token_ids, train_bpe_tokenizer


def launch_local(chat_model: str | None = None, spam_model: str | None = None, **options):
    """Start the demo on 127.0.0.1 at a free port, in this process (tiny random models where none are given);
    ``options`` go to ``app.build_demo`` (``queue_size``, ``concurrency``). Returns ``(demo, url)``;
    ``demo.close()`` stops it."""
    import app

    if chat_model is None:
        chat_model, default_spam = make_tiny_models(tempfile.mkdtemp(prefix="hfgpt-demo-"))
        spam_model = spam_model or default_spam
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.build_demo(chat_model, spam_model, **options)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


def make_tiny_models(root: str) -> tuple[str, str]:
    """A random chat model and spam classifier under ``root`` (``chat/`` and ``spam/``), with one tokenizer."""
    from pydoc_data.topics import topics

    # the instruction recipe's Alpaca template, so the demo builds the prompt a fine-tuned model was trained on
    tokenizer = add_chat_template(train_bpe_tokenizer([topics[k] for k in sorted(topics)[:40]], vocab_size=400))
    sizes = dict(vocab_size=len(tokenizer), n_positions=256, drop_rate=0.0, **special_token_ids(tokenizer))
    torch.manual_seed(0)
    chat, spam = os.path.join(root, "chat"), os.path.join(root, "spam")
    GPTScratchForCausalLM(GPTScratchConfig.from_preset("tiny", **sizes)).save_pretrained(chat)
    labels = dict(num_labels=2, id2label={0: "ham", 1: "spam"}, label2id={"ham": 0, "spam": 1})
    GPTScratchForSequenceClassification(GPTScratchConfig.from_preset("tiny", **sizes, **labels)).save_pretrained(spam)
    for folder in (chat, spam):
        tokenizer.save_pretrained(folder)
    return chat, spam


if __name__ == "__main__":
    print(make_tiny_models(sys.argv[1] if len(sys.argv) > 1 else "runs/demo-tiny"))
