"""Pure statistics, no AWS: the gates, traffic allocation, propensities and rewards."""
