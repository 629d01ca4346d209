"""The BentoML scoring service, its request/response schemas and the decision log."""
