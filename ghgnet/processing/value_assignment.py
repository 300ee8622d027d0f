"""Value assignment of a new working standard against the station's reference standards.

The new cylinder is measured in repeated cycles, each cycle bracketed by the reference standards
(refs, candidate, refs, candidate, ..., refs). For every candidate injection k the references'
readings are interpolated linearly in time to the candidate's time (the two bracketing injections
of each reference), a response function assigned = f(measured) is fitted through the references
by least squares, and the candidate's value in cycle k is a_k = f_k(x_k). The assigned value is
the mean of the a_k, on the references' scale.

Standard uncertainty (GUM, JCGM 100:2008, law of propagation for uncorrelated inputs, eq. 10):
    u^2 = u_ref^2 + u_fit^2 + u_rep^2
- u_ref: the references' own standard uncertainties carried through the fit. A least-squares
  prediction is linear in the references' assigned values, f(x0) = sum_i w_i y_i with
  w = [1, x0, ...] (X'X)^-1 X', so u_ref^2 = sum_i (w_i u_i)^2 (uncertainties taken as
  uncorrelated: references assigned on one scale share part of it, so this is a lower bound of
  the scale-link part, as ISO 12963:2017 treats one- and two-point calibrations).
- u_fit: lack of fit of the response, s_res^2 h0 with s_res^2 = SS_res / (n_ref - p) of the fit
  through the cycle-mean readings and h0 = x0' (X'X)^-1 x0 the leverage at the candidate's
  reading; 0 (not estimable) when there are exactly as many references as parameters.
- u_rep: repeatability, type A: s(a_k) / sqrt(K) over the K cycles (0 with one cycle).
Units are the species' units (CO2 ppm; CH4, CO, N2O ppb). Pure: arrays in, numbers out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True, slots=True)
class ReferenceStandard:
    """A reference cylinder for one species: its assigned value, standard uncertainty and scale,
    and the chain it itself traces to (as stored in the registry, outermost last)."""

    id: str
    value: float
    uncertainty: float
    scale: str = ""
    chain: tuple[dict, ...] = ()


@dataclass(frozen=True, slots=True)
class AssignedSpecies:
    """The assigned value of one species with its uncertainty budget (species units)."""

    species: str
    value: float
    uncertainty: float
    u_references: float
    u_fit: float
    u_repeatability: float
    cycle_values: tuple[float, ...]
    scale: str
    references: tuple[str, ...]
    degree: int = 1


@dataclass(frozen=True, slots=True)
class ValueAssignment:
    """The result for a cylinder: per species, and the chain of references it traces to."""

    cylinder: str
    species: dict[str, AssignedSpecies]
    chain: tuple[dict, ...] = field(default_factory=tuple)

    def assigned(self) -> dict[str, float]:
        return {sp: s.value for sp, s in self.species.items()}

    def uncertainty(self) -> dict[str, float]:
        return {sp: s.uncertainty for sp, s in self.species.items()}

    def scales(self) -> dict[str, str]:
        return {sp: s.scale for sp, s in self.species.items()}


def _design(x: NDArray[np.float64], degree: int) -> NDArray[np.float64]:
    return np.vander(x, degree + 1, increasing=True)


def prediction_weights(ref_measured: ArrayLike, x0: float, degree: int = 1) -> NDArray[np.float64]:
    """w with f(x0) = w @ assigned for the least-squares polynomial through the references
    (`ref_measured` their readings). Raises ValueError when the fit is undetermined."""
    x = np.asarray(ref_measured, dtype=np.float64).ravel()
    if degree not in (1, 2):
        raise ValueError(f"degree must be 1 or 2, got {degree}")
    if np.unique(x).size < degree + 1:
        raise ValueError(f"{x.size} reference reading(s) {x.tolist()}: need {degree + 1} distinct for degree {degree}")
    X = _design(x, degree)
    x0v = _design(np.array([x0]), degree)[0]
    return x0v @ np.linalg.solve(X.T @ X, X.T)


def assign_species(
    species: str,
    references: Sequence[ReferenceStandard],
    ref_measured: ArrayLike,
    candidate_measured: ArrayLike,
    degree: int = 1,
) -> AssignedSpecies:
    """One species' assigned value and uncertainty.

    ref_measured: shape (K, R), cycle k's reading of reference r (already brought to the time of
    the candidate's k-th injection, see `bracketed_readings`). candidate_measured: shape (K,).
    """
    refs = list(references)
    xr = np.atleast_2d(np.asarray(ref_measured, dtype=np.float64))
    xc = np.asarray(candidate_measured, dtype=np.float64).ravel()
    if xr.shape != (xc.size, len(refs)):
        raise ValueError(f"{species}: reference readings of shape {xr.shape}, expected ({xc.size}, {len(refs)})")
    if xc.size == 0:
        raise ValueError(f"{species}: no cycle of the candidate was measured")
    if not (np.isfinite(xr).all() and np.isfinite(xc).all()):
        raise ValueError(f"{species}: a reading is missing (NaN) in some cycle")
    scales = {r.scale for r in refs}
    if len(scales) > 1:
        raise ValueError(f"{species}: references on different scales {sorted(scales)}: convert them first")
    y = np.array([r.value for r in refs])
    u = np.array([r.uncertainty for r in refs])
    cycle_values = np.array([prediction_weights(xr[k], xc[k], degree) @ y for k in range(xc.size)])
    x_mean, x0 = xr.mean(axis=0), float(xc.mean())
    w = prediction_weights(x_mean, x0, degree)
    u_ref = float(np.sqrt(np.sum((w * u) ** 2)))
    p = degree + 1
    u_fit = 0.0
    if len(refs) > p:
        X = _design(x_mean, degree)
        coef = np.linalg.solve(X.T @ X, X.T @ y)
        s2 = float(np.sum((X @ coef - y) ** 2)) / (len(refs) - p)
        x0v = _design(np.array([x0]), degree)[0]
        u_fit = float(np.sqrt(s2 * (x0v @ np.linalg.solve(X.T @ X, x0v))))
    k = cycle_values.size
    u_rep = float(np.std(cycle_values, ddof=1) / np.sqrt(k)) if k > 1 else 0.0
    return AssignedSpecies(
        species=species, value=float(cycle_values.mean()),
        uncertainty=float(np.sqrt(u_ref**2 + u_fit**2 + u_rep**2)),
        u_references=u_ref, u_fit=u_fit, u_repeatability=u_rep,
        cycle_values=tuple(float(v) for v in cycle_values), scale=scales.pop(),
        references=tuple(r.id for r in refs), degree=degree)


def bracketed_readings(ref_times: ArrayLike, ref_values: ArrayLike, t: float) -> float:
    """A reference's reading at time `t` (epoch s), interpolated linearly between its injections
    just before and just after `t` (the nearest one alone when `t` is outside them)."""
    times = np.asarray(ref_times, dtype=np.float64)
    values = np.asarray(ref_values, dtype=np.float64)
    if times.size == 0:
        raise ValueError("a reference was never measured")
    order = np.argsort(times)
    return float(np.interp(t, times[order], values[order]))


def value_assignment(
    cylinder: str,
    injections: Sequence[tuple[str, float, Mapping[str, float]]],
    references: Mapping[str, Mapping[str, ReferenceStandard]],
    degree: int = 1,
) -> ValueAssignment:
    """The assigned values of `cylinder` from a bracketed sequence.

    injections: (cylinder id, mid time in epoch s, species -> mean reading) for each injection,
    the candidate's and the references'. references: reference id -> species -> its standard.
    Every species that every reference carries and the candidate was measured for is assigned.
    The chain lists each reference (id, values, uncertainties, scales) with its own chain.
    """
    cand = [(t, m) for c, t, m in injections if c == cylinder]
    if not cand:
        raise ValueError(f"candidate {cylinder!r} has no injection")
    ref_ids = list(references)
    if cylinder in references:
        raise ValueError(f"candidate {cylinder!r} is also one of the references")
    if len(ref_ids) < 2:
        raise ValueError(f"value assignment needs >= 2 references, got {ref_ids}")
    missing = [r for r in ref_ids if not any(c == r for c, _, _ in injections)]
    if missing:
        raise ValueError(f"reference(s) {missing} were never measured")
    species = [sp for sp in sorted(set.intersection(*(set(references[r]) for r in ref_ids)))
               if all(sp in m for _, m in cand)]
    if not species:
        raise ValueError(f"no species both carried by every reference and measured on {cylinder!r}")
    result: dict[str, AssignedSpecies] = {}
    for sp in species:
        xr = np.empty((len(cand), len(ref_ids)))
        for j, r in enumerate(ref_ids):
            got = [(t, m[sp]) for c, t, m in injections if c == r and sp in m and np.isfinite(m[sp])]
            if not got:
                raise ValueError(f"{sp}: reference {r!r} has no reading")
            tt, vv = zip(*got)
            for k, (t, _) in enumerate(cand):
                xr[k, j] = bracketed_readings(tt, vv, t)
        result[sp] = assign_species(sp, [references[r][sp] for r in ref_ids], xr,
                                    [m[sp] for _, m in cand], degree)
    chain = tuple(
        {"id": r,
         "assigned": {sp: references[r][sp].value for sp in references[r]},
         "uncertainty": {sp: references[r][sp].uncertainty for sp in references[r]},
         "scale": {sp: references[r][sp].scale for sp in references[r]},
         "chain": list(next(iter(references[r].values())).chain)}
        for r in ref_ids)
    return ValueAssignment(cylinder, result, chain)
