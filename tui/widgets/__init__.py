"""Dashboard widgets, one module per panel."""
