"""TaskFlow glue, one module per DAG it serves (named after the DAG)."""
