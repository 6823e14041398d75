"""hfgpt demo: chat with an instruction-tuned GPT (streaming), classify text messages as ham or spam, and look
inside the model (tokens, attention, the next-token choice; inside_tab.py).

Runs locally after the recipes, or as a Hugging Face Space:

    python spaces_demo/app.py --chat-model runs/instructions --spam-model runs/spam      # local folders
    python spaces_demo/app.py --from runs/book      # recipes/book.py's results: preferences (else instructions), spam-all
    HFGPT_CHAT_MODEL=you/hfgpt-sft HFGPT_SPAM_MODEL=you/hfgpt-spam python spaces_demo/app.py   # Hub ids

The app needs only transformers and gradio: hfgpt folders carry their own modeling code (trust_remote_code), so
the Space does not install hfgpt. A tab whose model is missing says so on the page instead of failing.
"""

from __future__ import annotations

import argparse
import os
import reprlib
import sys
import threading

import gradio as gr
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    TextIteratorStreamer,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the tab beside this file, however app is loaded
from inside_tab import build_inside_tab  # noqa: E402

MAX_INPUT_CHARS = 1000  # longer messages are cut (the models' context is short anyway)
CHAT_CONCURRENCY = 4  # generations running at once; more requests wait in the queue
QUEUE_SIZE = 64  # requests waiting beyond that are told "Queue is full! Please try again." by gradio
SPAM_EXAMPLES = [
    "WINNER!! You have been selected to receive a £900 prize reward! Call 09061701461 to claim now.",
    "Hey, are we still meeting for lunch at 1? I'll be a bit late.",
    "URGENT! Your mobile number has won a free entry to our weekly draw. Text WIN to 80086 now!",
    "Can you pick up some milk on your way home?",
]


def setting(name: str, minimum: float, maximum: float, default: float, **slider_options) -> gr.Slider:
    """A gr.Slider for an API that may send anything: null means the default, and a value that is not a number in
    the range gets an error naming the setting, the value and the range (gr.Slider's own preprocess fails on null
    or text with an opaque error, and lets NaN through). The check replaces this slider's ``preprocess``: gradio
    writes a ``.pyi`` file beside any subclass of a component."""
    slider = gr.Slider(minimum, maximum, value=default, **slider_options)
    rounded = slider.preprocess  # gradio's: rounds to the slider's precision

    def preprocess(payload):
        if payload is None:
            return default
        if isinstance(payload, bool) or not isinstance(payload, (int, float)) or \
                not minimum <= payload <= maximum:  # NaN fails the comparison too
            raise gr.Error(f"{name} must be a number from {minimum:g} to {maximum:g} (null for the default "
                           f"{default:g}); got {reprlib.repr(payload)}")
        return rounded(payload)

    slider.preprocess = preprocess
    return slider


def message_box() -> gr.Textbox:
    """The chat's text box; a null message is an empty one (gr.ChatInterface itself fails on None)."""
    box = gr.Textbox(placeholder="Type a message...", scale=7, autofocus=True, submit_btn=True, stop_btn=True)
    box.preprocess = lambda payload: "" if payload is None else str(payload)
    return box


def load(model_class, name: str | None):
    """(model, tokenizer, None) or (None, None, reason) — a missing model becomes a message, not a crash."""
    if not name:
        return None, None, "no model configured"
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=True)
        model = model_class.from_pretrained(name, trust_remote_code=True).eval()
    except Exception as error:  # noqa: BLE001 -- any load failure is shown in the page
        return None, None, f"could not load {name!r}: {' '.join(str(error).split())[:300]}"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, None


def build_prompt(tokenizer, message: str, history: list[dict]) -> str:
    """The tokenizer's chat template (the one the instruction fine-tuning trained on), else the message alone.
    ``history`` is gr.ChatInterface's list of messages (None: no conversation yet); entries without text content
    (files, components) are left out."""
    history = [] if history is None else history
    if not isinstance(history, list):
        raise gr.Error(f"history must be a list of {{'role': ..., 'content': ...}} messages; got "
                       f"{type(history).__name__} {reprlib.repr(history)}")
    messages = [{"role": m["role"], "content": m["content"]} for m in history
                if isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)]
    messages.append({"role": "user", "content": message})
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return message


def make_chat_fn(model, tokenizer):
    context = model.config.max_position_embeddings

    def chat(message: str, history: list[dict], max_new_tokens: int = 100, temperature: float = 0.7,
             top_k: int = 40):
        """Stream the reply; the inputs arrive checked and defaulted by ``setting`` and ``message_box``."""
        message = (message or "").strip()
        if not message:
            yield ("Type a message (an instruction such as 'Rewrite this sentence in passive voice: ...') "
                   "and press Enter.")
            return
        note = ""
        if len(message) > MAX_INPUT_CHARS:
            message, note = message[:MAX_INPUT_CHARS], f"(your message was cut to {MAX_INPUT_CHARS} characters)\n\n"
        max_new_tokens = max(1, min(int(max_new_tokens), context - 1))
        ids = tokenizer(build_prompt(tokenizer, message, history), return_tensors="pt").input_ids
        ids = ids[:, -(context - max_new_tokens):]  # keep the end of a long conversation within the context
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120)
        sampling = dict(do_sample=True, temperature=float(temperature), top_k=int(top_k)) if temperature > 0 else \
            dict(do_sample=False)
        failure = []

        def generate():
            try:
                with torch.no_grad():
                    model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                   streamer=streamer, pad_token_id=tokenizer.pad_token_id,
                                   eos_token_id=tokenizer.eos_token_id, **sampling)
            except Exception as error:  # noqa: BLE001 -- re-raised below, in the request, with its traceback
                failure.append(error)
                streamer.end()  # the request stops waiting for tokens at once

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        text = note
        for piece in streamer:
            text += piece
            yield text
        worker.join()
        if failure:
            raise failure[0]
        if not text.strip():
            yield "(the model produced no text; try a higher temperature)"

    return chat


def decision_note(config) -> str:
    """The decision rule saved with the classifier, in words. hfgpt's spam recipe stores its threshold in the weights
    (the spam logit is lowered by the threshold's log-odds) and in the config, so the top label, the more probable
    one, already is the thresholded decision; the config's ``decision_*`` fields say which threshold that is."""
    threshold = getattr(config, "decision_threshold", None)
    if threshold is None:
        return "Decision: the more probable label (no decision threshold saved with this model)."
    rule = getattr(config, "decision_rule", None)
    return (f"Decision threshold: {getattr(config, 'decision_positive_label', 'spam')} when the model's probability "
            f"is above {threshold:.4g}" + (f" ({rule})" if rule else "") + ". The scores below are shifted by that "
            "threshold: 0.5 is the threshold, and the top label is the decision.")


def make_classify_fn(model, tokenizer):
    """Probabilities from the logits' softmax; for a classifier with a saved threshold these are the shifted scores
    whose argmax is the thresholded decision (see :func:`decision_note`)."""
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    def classify(text: str) -> dict[str, float]:
        text = (text or "").strip()
        if not text:
            raise gr.Error("text is empty: paste a text message to classify.")
        enc = tokenizer(text[:MAX_INPUT_CHARS], return_tensors="pt", truncation=True,
                        max_length=model.config.max_position_embeddings)
        with torch.no_grad():
            probs = model(**enc).logits.softmax(-1)[0]
        return {label: float(p) for label, p in zip(labels, probs)}

    return classify


def build_demo(chat_model: str | None = None, spam_model: str | None = None, queue_size: int = QUEUE_SIZE,
               concurrency: int = CHAT_CONCURRENCY, inspect_model: str | None = None) -> gr.Blocks:
    """The three tabs; ``queue_size`` requests may wait while ``concurrency`` run (tests make both small).
    "Inside the model" looks at ``inspect_model``, by default the chat model."""
    chat, chat_tok, chat_problem = load(AutoModelForCausalLM, chat_model)
    spam, spam_tok, spam_problem = load(AutoModelForSequenceClassification, spam_model)
    with gr.Blocks(title="hfgpt demo") as demo:
        gr.Markdown(
            "# hfgpt\nThe GPT of *Build a Large Language Model (From Scratch)*, fine-tuned to follow instructions "
            "and to spot spam."
        )
        with gr.Tab("Chat"):
            if chat is None:
                gr.Markdown(f"**The chat model is not available** ({chat_problem}). Start the app with "
                            "`--chat-model FOLDER_OR_HUB_ID` or set `HFGPT_CHAT_MODEL`.")
            else:
                gr.ChatInterface(
                    make_chat_fn(chat, chat_tok),
                    chatbot=gr.Chatbot(render_markdown=False, height=400),  # plain text: a '#' line is no heading
                    textbox=message_box(),
                    additional_inputs=[  # the ranges and defaults are the API's; spaces_demo/README.md lists them
                        setting("max_new_tokens", 1, 256, 100, step=1, precision=0, label="max new tokens"),
                        setting("temperature", 0.0, 2.0, 0.7, step=0.05, label="temperature (0 = greedy)"),
                        setting("top_k", 1, 200, 40, step=1, precision=0, label="top-k"),
                    ],
                    examples=[["Rewrite the sentence using a simile: The car is very fast."],
                              ["What is the capital of France?"]],
                    cache_examples=False,
                    api_name="chat",
                    concurrency_limit=concurrency,
                )
        with gr.Tab("Spam classifier"):
            if spam is None:
                gr.Markdown(f"**The spam classifier is not available** ({spam_problem}). Start the app with "
                            "`--spam-model FOLDER_OR_HUB_ID` or set `HFGPT_SPAM_MODEL`.")
            else:
                gr.Markdown(decision_note(spam.config))
                text = gr.Textbox(label="Text message", lines=3, max_length=MAX_INPUT_CHARS,
                                  placeholder="Paste an SMS here")
                result = gr.Label(label="ham / spam", num_top_classes=2)
                button = gr.Button("Classify", variant="primary")
                button.click(make_classify_fn(spam, spam_tok), text, result, api_name="classify")
                text.submit(make_classify_fn(spam, spam_tok), text, result, api_name=False)
                gr.Examples(SPAM_EXAMPLES, inputs=text)
        build_inside_tab(inspect_model or chat_model, setting)
    demo.queue(default_concurrency_limit=concurrency, max_size=queue_size)
    return demo


def models_from(folder: str) -> tuple[str | None, str | None]:
    """(chat model, spam model) among recipes/book.py's results: preferences, else instructions; spam-all."""
    def found(name):
        path = os.path.join(folder, name)
        return path if os.path.isfile(os.path.join(path, "config.json")) else None

    return found("preferences") or found("instructions"), found("spam-all")


def main(argv=None, **launch_options):
    """Parse the flags and serve the app (``launch_options`` go to ``launch``; with ``prevent_thread_lock`` the
    running app is returned)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="results", metavar="OUT",
                        help="recipes/book.py's output folder: its chat and spam models (the flags below win)")
    parser.add_argument("--chat-model", default=os.environ.get("HFGPT_CHAT_MODEL"), help="instruction-tuned model")
    parser.add_argument("--spam-model", default=os.environ.get("HFGPT_SPAM_MODEL"), help="spam classifier")
    parser.add_argument("--inspect-model", default=os.environ.get("HFGPT_INSPECT_MODEL"),
                        help="the model 'Inside the model' shows (default: the chat model)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = parser.parse_args(argv)
    if args.results:
        chat_model, spam_model = models_from(args.results)
        args.chat_model, args.spam_model = args.chat_model or chat_model, args.spam_model or spam_model
        print(f"Chat model: {args.chat_model}; spam model: {args.spam_model}")
    demo = build_demo(args.chat_model, args.spam_model, inspect_model=args.inspect_model)
    demo.launch(server_name=args.host, server_port=args.port, **launch_options)
    return demo


if __name__ == "__main__":
    main()
