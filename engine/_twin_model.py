"""The architecture numbers of a dense decoder-only model, read from its ``config.json``.

The vLLM twin needs them twice: the cost model counts the FLOPs and bytes of a step from
them, and the KV capacity follows from the bytes of KV one token takes. Bundled configs
(``twin_data/models/<name>/config.json``) describe models that are too big to ship.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

_DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2, "fp8": 1}
_MOE_KEYS = ("num_experts", "num_local_experts", "n_routed_experts")


class ModelConfigError(ValueError):
    """A ``config.json`` the twin cannot model (missing field, MoE or unknown dtype)."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What the cost model and the KV capacity need to know of a model.

    Invariants: every count is positive; ``num_kv_heads`` divides ``num_heads``.
    Parameter counts leave out norms and biases (well under 0.1% of a dense model).
    """

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    dtype_bytes: int
    max_position_embeddings: int
    folder: Path | None = None

    @property
    def attention_params_per_layer(self) -> int:
        """q, k, v and o projections."""
        q = self.hidden_size * self.num_heads * self.head_dim
        kv = 2 * self.hidden_size * self.num_kv_heads * self.head_dim
        return q + kv + self.num_heads * self.head_dim * self.hidden_size

    @property
    def mlp_params_per_layer(self) -> int:
        """Gated MLP: gate, up and down projections."""
        return 3 * self.hidden_size * self.intermediate_size

    @property
    def layer_params(self) -> int:
        """Parameters of all decoder layers (every token passes through each once)."""
        return self.num_layers * (self.attention_params_per_layer + self.mlp_params_per_layer)

    @property
    def lm_head_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def total_params(self) -> int:
        """Layers, input embedding and (unless tied) the output head."""
        embed = self.vocab_size * self.hidden_size
        return self.layer_params + embed + (0 if self.tie_word_embeddings else self.lm_head_params)

    @property
    def weight_bytes(self) -> int:
        return self.total_params * self.dtype_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V of every layer for one token."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.dtype_bytes

    @classmethod
    def from_config(cls, config: dict[str, Any], name: str, dtype: str | None = None) -> ModelSpec:
        """Read a Hugging Face ``config.json`` mapping.

        Args:
            dtype: the dtype the engine runs (None: the config's ``torch_dtype``/``dtype``).

        Raises:
            ModelConfigError: naming the missing or unsupported field.
        """
        text = config.get("text_config")
        if isinstance(text, dict):  # multimodal wrappers keep the language model inside
            config = {**config, **text}
        for key in _MOE_KEYS:
            if config.get(key):
                raise ModelConfigError(
                    f"{name}: mixture-of-experts models ({key}) are not modelled"
                )

        def need(key: str) -> int:
            value = config.get(key)
            if not isinstance(value, int) or value < 1:
                raise ModelConfigError(f"{name}: config.json needs a positive integer {key!r}")
            return value

        heads = need("num_attention_heads")
        kv_heads = config.get("num_key_value_heads") or heads
        hidden = need("hidden_size")
        head_dim = config.get("head_dim") or hidden // heads
        if not isinstance(kv_heads, int) or heads % kv_heads:
            raise ModelConfigError(f"{name}: num_key_value_heads must divide num_attention_heads")
        raw_dtype = dtype or config.get("torch_dtype") or config.get("dtype") or "bfloat16"
        if str(raw_dtype) not in _DTYPE_BYTES:
            raise ModelConfigError(f"{name}: unknown dtype {raw_dtype!r}")
        return cls(
            name=name,
            num_layers=need("num_hidden_layers"),
            hidden_size=hidden,
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=int(head_dim),
            intermediate_size=need("intermediate_size"),
            vocab_size=need("vocab_size"),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            dtype_bytes=_DTYPE_BYTES[str(raw_dtype)],
            max_position_embeddings=int(config.get("max_position_embeddings") or 4096),
        )

    @classmethod
    def load(cls, source: str | Path, dtype: str | None = None) -> ModelSpec:
        """A bundled model by name (``qwen3-14b``), a model folder, or a ``config.json`` path.

        Raises:
            ModelConfigError: no such bundled model or file, or an unusable config.
        """
        folder = resolve_model_folder(source)
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ModelConfigError(f"cannot read {folder / 'config.json'}: {e}") from e
        name = str(source) if str(source) in bundled_models() else folder.name
        return replace(cls.from_config(config, name, dtype), folder=folder)


def _bundled_root() -> Path:
    return Path(str(resources.files(__package__).joinpath("twin_data", "models")))


def bundled_models() -> list[str]:
    """Names of the model configs shipped with agentrt."""
    root = _bundled_root()
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())


def resolve_model_folder(source: str | Path) -> Path:
    """The folder holding ``config.json`` for a bundled name, a folder or a config path.

    Raises:
        ModelConfigError: nothing by that name or path.
    """
    if str(source) in bundled_models():
        return _bundled_root() / str(source)
    path = Path(source).expanduser()
    if path.is_file() and path.name == "config.json":
        return path.parent
    if (path / "config.json").is_file():
        return path
    raise ModelConfigError(
        f"{source!r} is neither a bundled model ({', '.join(bundled_models())}) nor a folder "
        "or path with a config.json"
    )
