"""The "Inside the model" tab: a text's tokens and ids, a layer's attention and the next-token choice, drawn from
``hfgpt.inspection`` (the tab only draws). In the Space, where hfgpt is not installed, that same file is uploaded
beside app.py as ``inspection.py`` (spaces_demo/README.md, "Deploy").

    build_inside_tab("runs/instructions")    # inside a gr.Blocks; app.py passes the chat model by default
"""

from __future__ import annotations

import reprlib
import warnings

import gradio as gr

# matplotlib's fonts lack emoji; such a token is drawn as a box, which needs no warning per request
warnings.filterwarnings("ignore", message="Glyph .* missing from font")

try:
    from hfgpt import inspection
except ImportError:  # the Space: hfgpt/inspection.py uploaded beside app.py
    try:
        import inspection
    except ImportError:
        inspection = None

HEADERS = ["position", "BPE piece", "text", "id", "GPT-2 id"]


def visible(text: str) -> str:
    """A token's text as a label: spaces as '␣', line breaks as '⏎', other control characters escaped ('\\x0c');
    '·' for a byte token whose character ends in the next token."""
    text = text.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text) or "·"


def figure(width: float, height: float):
    """A matplotlib Figure without pyplot's global state (requests draw in parallel threads)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def heatmap(weights, labels: list[str], title: str):
    """Rows attend to columns; the masked future (above the diagonal) is hatched grey, not coloured."""
    import numpy as np
    from matplotlib.patches import Rectangle

    n = len(labels)
    fig = figure(min(3 + 0.33 * n, 12), min(2.6 + 0.3 * n, 11))
    ax = fig.add_subplot()
    values = np.ma.masked_where(np.triu(np.ones((n, n), dtype=bool), 1), weights.numpy())
    ax.set_facecolor("#e5e7eb")
    ax.add_patch(Rectangle((-0.5, -0.5), n, n, fill=False, hatch="//", edgecolor="#9ca3af", linewidth=0, zorder=0))
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=1, zorder=1)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("attended to (keys)")
    ax.set_ylabel("attending token (queries)")
    ax.set_title(title, fontsize=10)
    if n <= 12:
        for row in range(n):
            for col in range(row + 1):
                value = float(weights[row, col])
                ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if value > 0.6 else "white")
    fig.colorbar(image, ax=ax, shrink=0.8, label="attention weight")
    return fig


def bar_chart(choice, tokenizer):
    """Top-k probabilities, most likely on top; the greedy and the sampled token are marked."""
    labels = [visible(tokenizer.decode([i], clean_up_tokenization_spaces=False)) for i in choice.ids]
    colours = ["#f59e0b" if i == choice.sampled_id else "#2563eb" if i == choice.greedy_id else "#94a3b8"
               for i in choice.ids]
    fig = figure(6.5, 1.2 + 0.32 * len(labels))
    ax = fig.add_subplot()
    bars = ax.barh(range(len(labels)), choice.probabilities, color=colours)
    ax.set_yticks(range(len(labels)), [f"{label}  ({i})" for label, i in zip(labels, choice.ids)], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.18)
    ax.set_xlabel(f"probability = softmax(top-{choice.top_k} logits / {choice.temperature:g})"
                  if choice.temperature else "temperature 0: greedy, all probability on the top token")
    for bar, token_id, p in zip(bars, choice.ids, choice.probabilities):
        marks = [name for name, chosen in (("greedy", choice.greedy_id), ("sampled", choice.sampled_id))
                 if token_id == chosen]
        ax.text(p + 0.01, bar.get_y() + bar.get_height() / 2, f"{p:.3f}" + (f"  ← {' & '.join(marks)}"
                if marks else ""), va="center", fontsize=8)
    ax.set_title("next token: blue = greedy (argmax), orange = sampled (seeded)", fontsize=10)
    return fig


def plain_slider(name: str, minimum: float, maximum: float, default: float, **options) -> gr.Slider:
    return gr.Slider(minimum, maximum, value=default, **options)


def build_inside_tab(model_name: str | None, setting=plain_slider) -> gr.Tab:
    """The tab, inside the caller's ``gr.Blocks`` (``model_name``: a causal-LM folder or Hub id, loaded once more
    with eager attention). A model that cannot load is explained on the page. ``setting(name, minimum, maximum,
    default, **options)`` makes the sliders (app.py's checks API values and names the setting in its errors)."""
    with gr.Tab("Inside the model") as tab:
        fill_tab(tab, model_name, setting)
    return tab


def fill_tab(tab: gr.Tab, model_name: str | None, setting=plain_slider) -> None:
    """The components and events; the first view is drawn when the tab is first opened (drawing it at start-up would
    slow every launch of the app by the plots)."""
    if inspection is None:
        gr.Markdown("**The inspector is not available**: `inspection.py` (hfgpt/inspection.py) is missing beside "
                    "app.py.")
        return
    if not model_name:
        gr.Markdown("**No model to look inside**: start the app with `--chat-model` or `--inspect-model`.")
        return
    try:
        model, tokenizer = inspection.load(model_name)
    except Exception as error:  # noqa: BLE001 -- any load failure is shown in the page
        gr.Markdown(f"**The inspector's model is not available** (could not load {model_name!r}: "
                    f"{' '.join(str(error).split())[:300]})")
        return
    layers, heads = model.config.num_hidden_layers, model.config.num_attention_heads
    gpt2 = inspection.is_gpt2_bpe(tokenizer)

    def checked(call, *args):
        try:
            return call(*args)
        except (TypeError, ValueError) as error:  # HfgptInputError and friends: the user's input, shown in a toast
            raise gr.Error(str(error)) from None

    def tokens_view(ids):
        rows = inspection.token_table(tokenizer, ids)
        table = [[r.position, r.piece, visible(r.text), r.id, "—" if r.gpt2_id is None else r.gpt2_id]
                 for r in rows]
        return inspection.token_spans(rows), table, [visible(r.text) for r in rows]

    def attention_plot(state, layer, head):
        if not state:
            return None
        labels = tokens_view(state.ids)[2]
        weights = checked(inspection.attention_map, state, checked(int, layer), head)
        return heatmap(weights, labels, f"layer {int(layer)}, head {head}" + (" (average of the heads)"
                                                                               if head == "mean" else ""))

    def choose(state, temperature, top_k, seed):
        if not state:
            return None, ""
        choice = checked(inspection.next_token, state.logits, temperature, top_k, seed)
        word = lambda i: repr(tokenizer.decode([i], clean_up_tokenization_spaces=False))  # noqa: E731
        summary = (f"greedy: {word(choice.greedy_id)} (id {choice.greedy_id}), sampled with seed {choice.seed}: "
                   f"{word(choice.sampled_id)} (id {choice.sampled_id})")
        return bar_chart(choice, tokenizer), summary

    def show(ids, layer, head, temperature, top_k, seed):
        state = checked(inspection.inspect, model, ids)
        spans, table, _ = tokens_view(ids)
        return (tokenizer.decode(ids, clean_up_tokenization_spaces=False), spans, table, state,
                attention_plot(state, layer, head), *choose(state, temperature, top_k, seed))

    def inspect_text(text, layer, head, temperature, top_k, seed):
        """Tokenize the text, run the model once, draw the three views."""
        if not isinstance(text, str):
            raise gr.Error(f"text must be a string; got {reprlib.repr(text)}")
        return show(checked(inspection.encode, tokenizer, text, model), layer, head, temperature, top_k, seed)

    def step(state, use, layer, head, temperature, top_k, seed):
        """Append the greedy or the sampled token and look again."""
        if not state:
            raise gr.Error("press Inspect first")
        choice = checked(inspection.next_token, state.logits, temperature, top_k, seed)
        token = choice.sampled_id if use == "sampled" else choice.greedy_id
        return show(checked(inspection.step, state.ids, token, model), layer, head, temperature, top_k, seed)

    gr.Markdown(
        "What the model sees and computes for a text, stage by stage as the book builds it: the **tokens** "
        "(chapter 2), the **attention weights** of one layer and head (chapter 3) and the **next-token "
        f"distribution** under temperature and top-k (chapter 5). Model: `{model_name}` ({layers} layers, {heads} "
        f"heads, eager attention). Up to {inspection.MAX_TOKENS} tokens.")
    with gr.Row():
        text = gr.Textbox(inspection.BOOK_PROMPT, label="Text", max_length=inspection.MAX_TEXT_CHARS, scale=5,
                          elem_id="inside-text")
        run = gr.Button("Inspect", variant="primary", scale=1, elem_id="inside-inspect")
    state = gr.State(None)
    gr.Markdown("### 1. Tokens and ids" + (" — GPT-2's BPE: the ids are tiktoken's `gpt2` ids, as the book "
                                          "prints them; tokens a fine-tuning added have no GPT-2 id" if gpt2 else
                                          " — this model's own BPE (not GPT-2's), so there is no GPT-2 id"))
    spans = gr.HighlightedText(label="the text, one colour per token, with each token's id", show_legend=False,
                               combine_adjacent=False, elem_id="inside-tokens")
    table = gr.Dataframe(headers=HEADERS, label="token table ('Ġ' in a BPE piece is a leading space)",
                         interactive=False, elem_id="inside-token-table", max_height=260)
    gr.Markdown("### 2. Attention: each row's weights over the tokens before it (the future is masked)")
    with gr.Row():
        layer = gr.Dropdown(list(range(layers)), value=layers - 1, label="layer", elem_id="inside-layer")
        head = gr.Dropdown(["mean", *map(str, range(heads))], value="mean", label="head ('mean' = average)",
                           elem_id="inside-head")
    attention = gr.Plot(label="attention weights", elem_id="inside-attention")
    gr.Markdown("### 3. The next token")
    with gr.Row():
        temperature = setting("temperature", 0, inspection.MAX_TEMPERATURE, 1.0, step=0.05,
                              label="temperature (0 = greedy)", elem_id="inside-temperature")
        top_k = setting("top_k", 1, inspection.MAX_TOP_K, 10, step=1, precision=0, label="top-k",
                        elem_id="inside-top-k")
        seed = gr.Number(0, label="seed (for the sample)", precision=0, elem_id="inside-seed")
    bars = gr.Plot(label="top-k next-token probabilities", elem_id="inside-next-token")
    summary = gr.Markdown(elem_id="inside-choice")
    with gr.Row():
        use = gr.Radio(["greedy", "sampled"], value="greedy", label="step appends the", elem_id="inside-use")
        step_button = gr.Button("Step: append the token", elem_id="inside-step")

    settings = [layer, head, temperature, top_k, seed]
    views = [text, spans, table, state, attention, bars, summary]  # the order of show()'s values
    run.click(inspect_text, [text, *settings], views, api_name="inspect")
    text.submit(inspect_text, [text, *settings], views, api_name=False)
    step_button.click(step, [state, use, *settings], views, api_name="step")
    for control in (layer, head):
        control.change(attention_plot, [state, layer, head], attention, api_name=False)
    for control in (temperature, top_k, seed):
        control.change(choose, [state, temperature, top_k, seed], [bars, summary], api_name=False)

    def first_view(state, text, *settings):
        if state is not None:  # opened before: keep what it shows
            return [gr.skip()] * len(views)
        return inspect_text(text, *settings)

    tab.select(first_view, [state, text, *settings], views, api_name=False)
