"""ghgnet central: receiver, storage, aggregation, QC, inversion and operator views.

Central never imports drivers or the station engine; it shares only the wire models.
"""
