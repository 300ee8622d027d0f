"""Calibrating medium-precision (low-cost NDIR) sites against the high-precision network (#21).

Method (`fit.py` holds the model and its formulas):
1. Hourly means. From central's minutes, per hour: the sensor's raw mean over its valid minutes
   (flag not N/K; at least `min_minutes_per_hour`), the site's temperature, humidity and pressure
   (minute diagnostics of the devices `environment` names, e.g. a T/RH/P transmitter read as an
   analyzer, or the station's `[processing] auxiliary` means of a [[devices]] entry carried on
   the analyzers' minutes as diagnostics named "met-1:humidity": service.read_hours reads both) and the reference's mean over its valid minutes, both over the minutes the sensor
   has (an hour the sensor saw in part is compared with the same part of it).
2. Reference. A co-located high-precision analyzer (`mode = "co-located"`, paired in the config:
   the same station or another) pairs every hour. Failing that, a background high-precision
   station of the network (`mode = "background"`) pairs only the well-mixed afternoon hours
   (local `well_mixed_hours`, default central's afternoon window), when the boundary layer is
   deep and a site's CO2 is closest to the regional background; the gain is then usually held at 1
   (`fit_gain = false`). Delaria et al. 2021 (AMT 14, 5487, BEACO2N) report about 1.6 ppm total
   error for GMP343 nodes with a calibrated reference location and 3.6 ppm without one; Müller et
   al. 2020 (AMT 13, 3815, Carbosense LP8 sensors) calibrate against co-located references and
   correct drift against reference data during operation.
3. Fit. Ordinary least squares of the forward model y = a0 + a1 x + aT dT + aH dRH + aP x dP + aD d
   (sensor y, reference x), temperature and humidity as zero shifts, pressure as a scale, drift
   linear in time over the window; a term whose driver barely varied is left out and reported.
4. Correction and uncertainty. Every hour of the sensor in the window (paired or not) is corrected
   by inverting the model, with its standard uncertainty (the coefficients' covariance and the
   fit's residual scatter, propagated). The corrected hours are a data level of their own (table
   `mp_hourly`, central/store/medium_precision.py), beside the model that made them (`mp_model`).
5. Residuals. Per site: n, bias, RMSE and max |corrected - reference| over the paired hours, in
   all and per `report_period`, and the same for the uncorrected values, for comparison.

Commands: `central-receiver medium-precision calibrate | report | export` (cli.py).
Scheduled refits: with `refit_every_h` set on an entry, `central-receiver run` refits it that often
over its last `refit_window_days` (worker.py, a thread of its own; it logs what it fitted).
"""
