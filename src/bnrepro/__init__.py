"""bnrepro: an executable reproduction of Santurkar et al. (NeurIPS 2018), "How Does Batch Normalization Help
Optimization?". The science lives here; the book's chapters only call it."""

__version__ = "0.1.0"
