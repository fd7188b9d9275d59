"""Every preset end to end against a fake provider speaking that provider's dialect, through
the Starlette middleware and the Flask extension."""
