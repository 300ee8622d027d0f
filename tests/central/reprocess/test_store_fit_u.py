"""Central keeps what the station sends of a calibration fit's covariance and a target result's u
and within_u (schema 14, central/store/sql.py migration_fit_u), on SQLite and PostgreSQL; a
calibration sent without them reads back None; a store at schema 13 gains the columns when opened.
(Rows stored before the migration read back None: the columns are added NULL.)"""

from __future__ import annotations

from datetime import timedelta

from test_reprocess import RECEIVED, T0, calibration  # tests/central/reprocess/test_reprocess.py

from ghgnet.wire import ParsedBatch, TargetWire


def test_fit_covariance_and_target_u_are_stored(store):
    plain = calibration(1, T0, 380.0, 460.0)
    cov = [[0.04, -1e-4], [-1e-4, 2.5e-7]]
    fit = plain.fits["co2"].model_copy(update={"covariance": cov})
    with_cov = calibration(2, T0 + timedelta(hours=4), 380.0, 460.0).model_copy(update={"fits": {"co2": fit}})
    target = TargetWire(seq=3, record_type="target", id="tgt-1", time=T0 + timedelta(hours=2), cylinder="TGT-1",
                        measured={"co2": 410.03, "ch4": 1900.2}, assigned={"co2": 410.0, "ch4": 1900.0},
                        bias={"co2": 0.03, "ch4": 0.2}, within_goal={"co2": True, "ch4": True},
                        u={"co2": 0.02, "ch4": None}, within_u={"co2": True, "ch4": None})
    store.store_batch(ParsedBatch("st-a", "calibration", RECEIVED, [plain, with_cov, target]), RECEIVED)
    cals = store.calibrations("st-a", T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert [c.fits["co2"].covariance for c in cals] == [None, cov]
    (t,) = store.targets("st-a", T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert (t.values["co2"].u, t.values["co2"].within_u) == (0.02, True)
    assert (t.values["ch4"].u, t.values["ch4"].within_u) == (None, None)
    # the same batch again is a duplicate (the new columns take part in the comparison), not a conflict
    again = store.store_batch(ParsedBatch("st-a", "calibration", RECEIVED, [plain, with_cov, target]), RECEIVED)
    assert (again.new, again.duplicate, again.conflicts) == (0, 3, [])


def test_a_store_from_schema_13_gains_the_columns(store_location):
    from support.central import open_at_schema  # tests/central/conftest.py

    from central.store import open_store

    old = open_at_schema(store_location, 13)
    old.close()
    s = open_store(**store_location)  # migrates to the newest schema
    try:
        test_fit_covariance_and_target_u_are_stored(s)
    finally:
        s.close()
