"""Daily delivery: budgeted allocation (`allocation`), exploration/holdout/pacing (`policy`), off-policy
evaluation (`ope`), and the day's plan (`planner`). Plain NumPy/polars/SciPy; no Dagster here."""
