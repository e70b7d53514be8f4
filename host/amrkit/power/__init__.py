"""The power model: a CR2032 cell (cell.py), the board's numbers as the model
reads them (spec.py), what each event of the unit's life costs, measured by
the twin where it can be (events.py), the battery-life forecast for a policy
(forecast.py), the brownout check (brownout.py) and the low-battery
thresholds (thresholds.py). `amr power` prints them; docs/power.md explains
the model and its sources."""
