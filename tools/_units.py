"""Unit conversion for the calculator: length, mass, time and (affine) temperature.

Each unit maps to its dimension's SI base unit by ``base = (value + offset) * scale``;
only temperatures have an offset (degrees Celsius and Fahrenheit do not start at
absolute zero), so converting them is affine, not a plain ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._tool import ToolFailure

Dimension = Literal["length", "mass", "time", "temperature"]


@dataclass(frozen=True, slots=True)
class Unit:
    """One unit: ``base = (value + offset) * scale`` in its dimension's SI base unit."""

    symbol: str
    dimension: Dimension
    scale: float
    offset: float = 0.0


_DAY = 86_400.0
_TABLE: tuple[tuple[Unit, tuple[str, ...]], ...] = (
    # length, base: metre
    (Unit("m", "length", 1.0), ("meter", "meters", "metre", "metres")),
    (Unit("km", "length", 1e3), ("kilometer", "kilometers", "kilometre", "kilometres")),
    (Unit("cm", "length", 1e-2), ("centimeter", "centimeters", "centimetre", "centimetres")),
    (Unit("mm", "length", 1e-3), ("millimeter", "millimeters", "millimetre", "millimetres")),
    (Unit("um", "length", 1e-6), ("µm", "micrometer", "micrometers", "micron", "microns")),
    (Unit("nm", "length", 1e-9), ("nanometer", "nanometers", "nanometre", "nanometres")),
    (Unit("mi", "length", 1609.344), ("mile", "miles")),
    (Unit("yd", "length", 0.9144), ("yard", "yards")),
    (Unit("ft", "length", 0.3048), ("foot", "feet")),
    (Unit("in", "length", 0.0254), ("inch", "inches")),
    (Unit("nmi", "length", 1852.0), ("nautical_mile", "nautical_miles")),
    # mass, base: kilogram
    (Unit("kg", "mass", 1.0), ("kilogram", "kilograms")),
    (Unit("g", "mass", 1e-3), ("gram", "grams")),
    (Unit("mg", "mass", 1e-6), ("milligram", "milligrams")),
    (Unit("ug", "mass", 1e-9), ("µg", "microgram", "micrograms")),
    (Unit("t", "mass", 1e3), ("tonne", "tonnes", "metric_ton", "metric_tons")),
    (Unit("lb", "mass", 0.45359237), ("lbs", "pound", "pounds")),
    (Unit("oz", "mass", 0.028349523125), ("ounce", "ounces")),
    (Unit("st", "mass", 6.35029318), ("stone", "stones")),
    # time, base: second; a year is the Julian year (365.25 days)
    (Unit("s", "time", 1.0), ("sec", "secs", "second", "seconds")),
    (Unit("ms", "time", 1e-3), ("millisecond", "milliseconds")),
    (Unit("us", "time", 1e-6), ("µs", "microsecond", "microseconds")),
    (Unit("ns", "time", 1e-9), ("nanosecond", "nanoseconds")),
    (Unit("min", "time", 60.0), ("mins", "minute", "minutes")),
    (Unit("h", "time", 3600.0), ("hr", "hrs", "hour", "hours")),
    (Unit("d", "time", _DAY), ("day", "days")),
    (Unit("wk", "time", 7 * _DAY), ("week", "weeks")),
    (Unit("yr", "time", 365.25 * _DAY), ("year", "years")),
    # temperature, base: kelvin
    (Unit("K", "temperature", 1.0), ("kelvin",)),
    (Unit("degC", "temperature", 1.0, 273.15), ("C", "°C", "celsius")),
    (Unit("degF", "temperature", 5 / 9, 459.67), ("F", "°F", "fahrenheit")),
    (Unit("degR", "temperature", 5 / 9), ("R", "°R", "rankine")),
)


def _index() -> tuple[dict[str, Unit], dict[str, Unit]]:
    exact: dict[str, Unit] = {}
    folded: dict[str, Unit] = {}
    for unit, aliases in _TABLE:
        for name in (unit.symbol, *aliases):
            assert name not in exact, f"unit name {name!r} defined twice"
            exact[name] = unit
            # Case is ignored only for long names: "Mm" must not silently become "mm".
            if len(name) > 2:
                folded[name.lower()] = unit
    return exact, folded


UNITS, _FOLDED = _index()


def lookup_unit(name: str, *, field: str = "unit") -> Unit:
    """The unit called ``name`` (a symbol like "km" or a word like "miles").

    Raises:
        ToolFailure: unknown unit; the message lists the known symbols.
    """
    unit = UNITS.get(name.strip()) or _FOLDED.get(name.strip().lower())
    if unit is None:
        raise ToolFailure(f"{field}: unknown unit {name!r}; known units: {known_units()}")
    return unit


def known_units() -> str:
    """The unit symbols by dimension, as one line."""
    groups: dict[str, list[str]] = {}
    for unit, _ in _TABLE:
        groups.setdefault(unit.dimension, []).append(unit.symbol)
    return "; ".join(f"{dim}: {', '.join(symbols)}" for dim, symbols in groups.items())


def convert_units(value: float, from_unit: str, to_unit: str) -> float:
    """``value`` in ``from_unit`` expressed in ``to_unit``.

    Raises:
        ToolFailure: an unknown unit, or units of different dimensions.
    """
    src = lookup_unit(from_unit, field="from_unit")
    dst = lookup_unit(to_unit, field="to_unit")
    if src.dimension != dst.dimension:
        raise ToolFailure(
            f"cannot convert {src.dimension} ({from_unit}) to {dst.dimension} ({to_unit})"
        )
    base = (value + src.offset) * src.scale
    return base / dst.scale - dst.offset
