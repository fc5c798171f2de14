"""Everything the UI does besides drawing, without Textual or torch: starting and following
engine processes (`launcher`, `procs`, `supervisor`), the model of a run (`runstate`), the
headless display (`headless`), sweeps (`sweep`), exports (`exports`) and evaluation data
(`evaldata`). The dashboard (tui.app, tui.screens, tui.widgets) and the CLI (tui.cli) use it."""
