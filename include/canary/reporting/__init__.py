"""What a person reads after a rollout: the HTML report, its charts and the run's summary."""
