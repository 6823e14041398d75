"""The FLOP count per trained token that the throughput benchmarks turn into FLOP/s and MFU."""


def flops_per_token(n_params: int, n_layer: int, n_embd: int, context: int) -> float:
    """nanoGPT's ``estimate_mfu`` (PaLM appendix B): ``6 N + 12 L H Q T`` for forward + backward, ``N`` the
    parameters without the position embeddings (the token embedding counts: it is also the output layer), and
    ``H Q`` = heads x head size = ``n_embd``."""
    return 6 * n_params + 12 * n_layer * n_embd * context
