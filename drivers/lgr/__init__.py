"""ABB / Los Gatos Research analyzers: the RS-232 record stream and the data files."""
