"""Fixed-capacity circular replay buffers: `init`, `add`, `sample`, `sample_sequences`."""
from jaxmbrl.buffers._replay import (
    BufferState,
    add,
    can_sample,
    capacity,
    gather,
    init,
    sample,
    sample_indices,
    sample_sequence_indices,
    sample_env_sequences,
    sample_sequences,
)

__all__ = [
    "BufferState",
    "add",
    "can_sample",
    "capacity",
    "gather",
    "init",
    "sample",
    "sample_indices",
    "sample_sequence_indices",
    "sample_env_sequences",
    "sample_sequences",
]
