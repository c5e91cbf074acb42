"""Effect predictor: P(click | send), P(convert | send), P(convert | no send), uplift and incremental margin.

Modules: `features` (the contract's column list, vocabularies, polars -> tensors), `model` (behaviour-
sequence Transformer and its tabular variant), `train` (training loop, checkpoints, DDP), `metrics` (AUC,
calibration, Qini/AUUC/uplift@k with bootstrap intervals), `baselines` (T-learner logistic regression,
popularity rule), `evaluate` (reports beside the baselines), `predict` (saving, loading and scoring).
"""
