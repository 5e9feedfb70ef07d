"""The models rolled out: churn data, training, offline scores, the nightly job, the registry."""
