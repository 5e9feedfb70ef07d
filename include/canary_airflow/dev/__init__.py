"""Developer tooling: the local Airflow runner, ``airflow standalone`` with the stack, the demo."""
