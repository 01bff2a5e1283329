"""Sentence vectors for the semantic cache: WordLlama's static token embeddings
(the ``wordllama`` package ships them in its wheel: the LLaMA-2 vocabulary,
32,000 tokens x 256 dimensions, 16 MB), mean-pooled and normalised.

Everything is read from the installed package; nothing is downloaded. We read
the two files ourselves (``tokenizers`` and ``safetensors``, both wordllama's
own dependencies) instead of calling ``WordLlama.load``: that looks for the
tokenizer in a folder the wheel does not have and then tries the network, and
importing ``wordllama.inference`` configures the root logger.

A static model costs a tokenizer call and a row lookup per token: about
0.1 ms a question (see ``python -m bench.cache``), so every lookup can afford
it. Its limits (it cannot see word order, and near-synonyms of opposite
meaning sit close) are why the vector only proposes candidates and is one
feature of the calibrated decision, behind the guards.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_NAME = "wordllama-l2-supercat-256"
DIMENSIONS = 256
_TOKENIZER_FILE = ("tokenizers", "l2_supercat_tokenizer_config.json")
_WEIGHTS_FILE = ("weights", "l2_supercat_256.safetensors")


def _package_dir() -> Path:
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the semantic cache needs the 'wordllama' package (a dependency of mcp-tars): "
                         "reinstall mcp-tars, or set cache.semantic to false")
    return Path(list(spec.submodule_search_locations)[0])


class StaticEmbedder:
    """Text -> unit vector (float32, ``DIMENSIONS``), plus per-word vectors
    and weights for the decision's word alignment. Thread-safe."""

    name = MODEL_NAME

    def __init__(self, package_dir: Path | None = None):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        root = package_dir or _package_dir()
        tokenizer_path, weights_path = root.joinpath(*_TOKENIZER_FILE), root.joinpath(*_WEIGHTS_FILE)
        if not tokenizer_path.exists() or not weights_path.exists():
            raise ValueError(f"the wordllama package at {root} lacks its model files; reinstall it "
                             "(pip install --force-reinstall wordllama)")
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self._matrix = np.ascontiguousarray(load_file(str(weights_path))["embedding.weight"], dtype=np.float32)
        self._lock = threading.Lock()  # tokenizers' Tokenizer is not documented as thread-safe
        self._word = lru_cache(maxsize=65_536)(self._word_uncached)

    def _ids(self, text: str) -> list[int]:
        with self._lock:
            return self._tokenizer.encode(text, add_special_tokens=False).ids

    def embed(self, text: str) -> np.ndarray:
        """The unit vector of ``text`` (zeros for text without tokens)."""
        ids = self._ids(text)
        if not ids:
            return np.zeros(self._matrix.shape[1], np.float32)
        v = self._matrix[ids].mean(axis=0)
        n = float(np.linalg.norm(v))
        return v / n if n else v

    def word(self, word: str) -> tuple[np.ndarray, float]:
        """A word's unit vector and weight (the norm of its pooled token
        vectors: function words are short vectors, names and content words long)."""
        return self._word(word)

    def _word_uncached(self, word: str) -> tuple[np.ndarray, float]:
        ids = self._ids(word)
        if not ids:
            return np.zeros(self._matrix.shape[1], np.float32), 0.0
        v = self._matrix[ids].mean(axis=0)
        n = float(np.linalg.norm(v))
        return (v / n if n else v), n


_shared: StaticEmbedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> StaticEmbedder:
    """One embedder per process (16 MB of weights, loaded on first use, ~0.2 s)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = StaticEmbedder()
        return _shared


def to_blob(vector: np.ndarray) -> bytes:
    """A vector as stored in the cache table: float16, little-endian (512 bytes)."""
    return np.asarray(vector, dtype="<f2").tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f2").astype(np.float32)
