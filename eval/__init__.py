"""The evaluation: metrics, report, confusion matrices and MLflow runs for a run's predictions."""
