"""Cost profiles of the vLLM twin as JSON files ("agentrt-twin-profile/1").

Two kinds, tagged by ``kind``:

* ``roofline``: a GPU (peaks, memory, link), the fractions of the peaks it reaches, fixed
  costs, how vLLM sizes the KV cache on it and vLLM's scheduler defaults there. Bundled:
  ``a100-80gb``, ``a100-40gb`` and ``h100-80gb`` (``twin_data/devices``), every constant
  with its source.
* ``measured``: written by ``agentrt engine profile``: the profiled engine's settings
  (model folder, dtype, block size, KV blocks, token budget...), the fitted coefficients
  of ``LinearStepCost``, the fit's quality and every measured sample.

Pydantic lives only here; the rest of the twin works with the dataclasses these return.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ._twin_cost import LinearStepCost, StepShape
from ._twin_roofline import DeviceSpec, RooflineSettings

PROFILE_SCHEMA: Final = "agentrt-twin-profile/1"

_STRICT = ConfigDict(extra="forbid", frozen=True)
_Pos = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_Count = Annotated[int, Field(ge=1)]


class ProfileError(ValueError):
    """A profile that cannot be found or read; the message names the file and field."""


class _Device(BaseModel):
    model_config = _STRICT
    name: str
    peak_flops: _Pos
    memory_bandwidth: _Pos
    memory_bytes: _Count
    link_bandwidth: _Pos


class _Roofline(BaseModel):
    model_config = _STRICT
    compute_fraction: Annotated[float, Field(gt=0, le=1)]
    memory_fraction: Annotated[float, Field(gt=0, le=1)]
    step_overhead_s: _NonNeg
    allreduce_latency_s: _NonNeg = 0.0


class _Memory(BaseModel):
    model_config = _STRICT
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.9
    runtime_reserve_bytes: Annotated[int, Field(ge=0)] = 0


class EngineDefaults(BaseModel):
    """vLLM's scheduler settings where the profile applies (each may be overridden)."""

    model_config = _STRICT
    block_size: _Count
    max_num_batched_tokens: _Count
    max_num_seqs: _Count
    long_prefill_token_threshold: Annotated[int, Field(ge=0)] = 0
    max_model_len: _Count | None = None
    num_blocks: _Count | None = None
    """Measured profiles: the profiled engine's KV blocks (vLLM's null block included)."""
    kv_cache_bytes: _Count | None = None
    scheduling_policy: Literal["priority", "fcfs"] = "priority"


class _Profile(BaseModel):
    """What every profile file starts with."""

    model_config = _STRICT
    schema_: Literal["agentrt-twin-profile/1"] = Field(default=PROFILE_SCHEMA, alias="schema")
    name: str
    description: str = ""
    engine: EngineDefaults


class RooflineProfile(_Profile):
    """A GPU what-if profile (see the module docstring)."""

    kind: Literal["roofline"] = "roofline"
    device: _Device
    roofline: _Roofline
    memory: _Memory = _Memory()
    sources: dict[str, str] = {}

    def device_spec(self) -> DeviceSpec:
        return DeviceSpec(**self.device.model_dump())

    def roofline_settings(self) -> RooflineSettings:
        return RooflineSettings(**self.roofline.model_dump())


class ModelRef(BaseModel):
    """Which model a measured profile ran: its folder and the dtype vLLM used."""

    model_config = _STRICT
    folder: str
    dtype: str


class Sample(BaseModel):
    """One measured step: its shape and seconds."""

    model_config = _STRICT
    shape: dict[str, Any]
    seconds: _NonNeg

    def step_shape(self) -> StepShape:
        return StepShape.from_json(self.shape)


class FitQuality(BaseModel):
    model_config = _STRICT
    samples: int
    r2: float
    median_abs_rel_error: float


class MeasuredProfile(_Profile):
    """A cost profile fitted to a real engine (see the module docstring)."""

    kind: Literal["measured"] = "measured"
    model: ModelRef
    coefficients: dict[str, _NonNeg]
    timing: Literal["engine_steps", "client_gaps"] = "client_gaps"
    """What the samples time: the engine core's own steps (a step trace), or the probes'
    client-side gaps (profiles written before step traces existed)."""
    fit: FitQuality
    samples: tuple[Sample, ...] = ()
    machine: dict[str, Any] = {}
    created: str = ""

    def cost(self) -> LinearStepCost:
        try:
            return LinearStepCost(**self.coefficients)
        except TypeError as e:
            raise ProfileError(f"profile {self.name!r}: coefficients: {e}") from e


TwinProfile = Annotated[RooflineProfile | MeasuredProfile, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[RooflineProfile | MeasuredProfile] = TypeAdapter(TwinProfile)


def _devices_root() -> Path:
    return Path(str(resources.files(__package__).joinpath("twin_data", "devices")))


def bundled_profiles() -> list[str]:
    """Names of the GPU profiles shipped with agentrt."""
    return sorted(p.stem for p in _devices_root().glob("*.json"))


def parse_profile(data: object, origin: str = "profile") -> RooflineProfile | MeasuredProfile:
    """Validate a profile's JSON value.

    Raises:
        ProfileError: naming ``origin`` and every bad field.
    """
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise ProfileError(f"{origin}: {problems}") from None


def load_profile(source: str | Path) -> RooflineProfile | MeasuredProfile:
    """A bundled profile by name (``a100-80gb``) or a profile file.

    Raises:
        ProfileError: no such profile, unreadable JSON or a bad field.
    """
    path = _devices_root() / f"{source}.json" if str(source) in bundled_profiles() else None
    path = path or Path(source).expanduser()
    if not path.is_file():
        raise ProfileError(
            f"{source!r} is neither a bundled profile ({', '.join(bundled_profiles())}) "
            "nor a profile file"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ProfileError(f"cannot read profile {path}: {e}") from e
    return parse_profile(data, str(path))


def dump_profile(profile: RooflineProfile | MeasuredProfile, path: Path) -> None:
    """Write ``profile`` as indented JSON (the form ``load_profile`` reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(profile.model_dump(mode="json", by_alias=True), indent=1)
    path.write_text(text + "\n")
