"""Running a scenario: the runner, per-year checkpoints (model state, signals, resume and
fork), progress lines and the per-agent sample.  Imports the simulation below it."""
