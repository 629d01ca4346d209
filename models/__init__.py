"""Estimators (churn, uplift), uplift metrics, the decision policy and explanations. No I/O."""
