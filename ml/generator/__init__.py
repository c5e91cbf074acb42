"""Promo-copy generator: a small conditional Transformer that writes slot templates, filled from the offer
and product records, verified against them, and checked against advertising rules per locale and channel.

Entry points: `CopyGenerator` (generate.py), `train_generator` (train.py), `evaluate_generator` (evaluate.py).
"""
