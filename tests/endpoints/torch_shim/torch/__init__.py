"""Stand-in for ``torch`` in the TorchServe worker, and nothing more.

TorchServe's Python worker imports torch in one place only, its wire encoder
(``ts/protocol/otf_message_handler.py``), to ask ``isinstance(x, torch.Tensor)``
of each reply. Our handler returns JSON, never tensors, and PyPI's torch is a
multi-GB CUDA build: this module answers that one question (no value is ever
a Tensor) so the real TorchServe frontend and worker run unchanged.
"""


class Tensor:  # nothing is ever an instance
    pass


def save(*_args, **_kwargs):
    raise NotImplementedError("torch shim: the echo handler never returns tensors")
