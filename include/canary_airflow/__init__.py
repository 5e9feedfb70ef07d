"""Airflow glue: operators, sensors, triggers, the trigger form, per-DAG tasks, dev tooling."""
