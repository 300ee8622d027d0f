"""Footprint files (combined netCDF and STILT) read back into the same sparse operator."""

from __future__ import annotations

import numpy as np
import pytest

from central.inversion.footprints import (
    read_combined,
    read_stilt_dir,
    stilt_file_name,
    write_combined,
    write_stilt_file,
)
from central.inversion.grid import FluxGrid
from central.inversion.twin import TwinSpec, make_twin


@pytest.fixture(scope="module")
def twin():
    return make_twin(TwinSpec(ny=10, nx=12, days=3, n_stations=2, footprint_hours=30, seed=2), keep_layers=True)


def urban(twin):
    mask = twin.table.station != twin.background_station
    return twin.table.station[mask], twin.table.time[mask]


def test_combined_file_reads_back_the_twin_operator(twin, tmp_path):
    station, time = urban(twin)
    path = tmp_path / "foot.nc"
    write_combined(path, twin.grid.lat, twin.grid.lon, station, time, twin.layer_start, twin.layers)
    h, has, outside = read_combined(path, twin.grid, station, time)
    assert has.all()
    np.testing.assert_allclose(h.dense(), twin.h.dense(), rtol=1e-6, atol=0)  # float32 on disk
    assert max(outside) > 0  # the first day's footprints reach back before the period


def test_observation_without_footprint_is_left_out(twin, tmp_path):
    station, time = urban(twin)
    path = tmp_path / "foot.nc"
    write_combined(path, twin.grid.lat, twin.grid.lon, station[1:], time[1:], twin.layer_start[1:], twin.layers[1:])
    h, has, _ = read_combined(path, twin.grid, station, time)
    assert not has[0] and has[1:].all()
    assert h.n_obs == station.size - 1
    np.testing.assert_allclose(h.dense(), twin.h.dense()[1:], rtol=1e-6, atol=0)


def test_stilt_files_read_back_the_twin_operator(twin, tmp_path):
    station, time = urban(twin)
    places = dict(zip(twin.station_ids, zip(twin.station_lat, twin.station_lon)))
    for i, (s, t) in enumerate(zip(station, time)):
        lat, lon = places[s]
        write_stilt_file(tmp_path / stilt_file_name(t, lon, lat, 100), twin.grid.lat, twin.grid.lon,
                         twin.layer_start[i], twin.layers[i])
    h, has, _ = read_stilt_dir(tmp_path, twin.grid, station, time, places)
    assert has.all()
    np.testing.assert_allclose(h.dense(), twin.h.dense(), rtol=1e-6, atol=0)


def test_footprint_on_another_grid_is_refused(twin, tmp_path):
    station, time = urban(twin)
    path = tmp_path / "foot.nc"
    write_combined(path, twin.grid.lat + 0.5, twin.grid.lon, station, time, twin.layer_start, twin.layers)
    with pytest.raises(ValueError, match="cell centres differ"):
        read_combined(path, twin.grid, station, time)


def test_hourly_layers_are_summed_into_their_flux_step():
    grid = FluxGrid(np.array([0.0, 1.0]), np.array([0.0, 1.0]),
                    np.array(["2024-01-01T00", "2024-01-02T00"], dtype="datetime64[s]"), np.array([86400.0, 86400.0]))
    from central.inversion.footprints import FootprintAccumulator

    acc = FootprintAccumulator(grid)
    starts = np.array(["2024-01-02T01", "2024-01-01T23", "2024-01-01T22", "2023-12-31T23"], dtype="datetime64[s]")
    layers = np.ones((4, 2, 2)) * np.array([1.0, 2.0, 3.0, 4.0])[:, None, None]
    acc.add(0, starts, layers)
    h = acc.operator(1)
    np.testing.assert_allclose(h.dense()[0], [5, 5, 5, 5, 1, 1, 1, 1])
    assert acc.outside_fraction[0] == pytest.approx(0.4)
