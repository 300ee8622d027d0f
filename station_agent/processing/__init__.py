"""The station's own processing: live readings into minute bins (`minute_bins`), the stack CEMS
calculation (`cems`) and eddy-covariance fluxes (`flux`). The minute record, the water correction
and the calibration maths are shared with central and live in `ghgnet.processing`."""
