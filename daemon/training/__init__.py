"""Training and evaluation data: corpora, AI-like fakes, codec conditions and metrics."""
