"""Hugging Face model directories: the shared BART-style layout, and one module per family (Marian, M2M100/NLLB)."""
