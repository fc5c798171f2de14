"""The bundled recipe book, shipped in the wheel as package data: `presets/*.yaml` (one run's
recipe each) and `sweeps/*.yaml` (tables of runs). Found through `engine.presets`."""
