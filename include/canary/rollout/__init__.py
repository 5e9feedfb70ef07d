"""The rollout's SageMaker side: artifacts, endpoint requests, the S3 layout, cleanup, outcomes."""
