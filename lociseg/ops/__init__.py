"""Low-level array and tensor helpers shared by losses, models and inference."""
