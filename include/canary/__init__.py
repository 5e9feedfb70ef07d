"""The canary rollout domain: the plan and everything that acts on it. Imports no Airflow.

Rooms: ``plan`` (the one home of every setting), ``rollout/``, ``stage/``, ``experiment/``,
``replay/``, ``models/``, ``reporting/``; see docs/architecture.md.
"""
