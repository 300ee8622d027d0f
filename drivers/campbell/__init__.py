"""Campbell Scientific data files: TOA5 (ASCII) and TOB1 (binary) tables of a data logger."""
