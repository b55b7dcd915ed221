"""Tensor specs and the KServe v2 datatype names, shared by backends and the codec."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: v2 datatype name -> NumPy dtype (BYTES is not supported by this server).
V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
NUMPY_TO_V2: dict[np.dtype, str] = {v: k for k, v in V2_TO_NUMPY.items()}


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: ``shape`` uses -1 for every dynamic dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return V2_TO_NUMPY[self.datatype]

    @property
    def batched(self) -> bool:
        """True when the first dimension is dynamic, so requests can be stacked on it."""
        return len(self.shape) >= 1 and self.shape[0] == -1

    def metadata(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def check(self, array: np.ndarray) -> str | None:
        """Return a message naming what is wrong with ``array`` for this input, or None."""
        return self.check_shape(array.shape)

    def check_shape(self, shape: tuple[int, ...]) -> str | None:
        """Return a message naming what is wrong with ``shape`` for this input, or None."""
        if len(shape) != len(self.shape):
            return (
                f"input {self.name!r}: expected {len(self.shape)} dimensions "
                f"{list(self.shape)}, got shape {list(shape)}"
            )
        for got, want in zip(shape, self.shape, strict=True):
            if want != -1 and got != want:
                return f"input {self.name!r}: expected shape {list(self.shape)}, got {list(shape)}"
        if self.batched and shape[0] < 1:
            return f"input {self.name!r}: batch dimension must be at least 1"
        return None
