"""Detection engines (CNN, Demucs) and their fusion into one calibrated verdict."""
