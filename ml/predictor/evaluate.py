"""Evaluate a trained predictor beside the baselines: `evaluate_predictor(...)` or `python -m ml.predictor.evaluate`.

Per model: AUC / log-loss / ECE of P(click | send) and P(convert | send) on treated rows and of
P(convert | no send) on untreated rows; Qini coefficient, AUUC and uplift@k with bootstrap intervals (these
assume treatment was randomized — true for holdout/exploration rows and for Hillstrom; on rows chosen by a
greedy policy they are biased); and, when the simulator's `true_uplift` is present, the correlation of
predicted with true uplift and the true value of treating the top k% by each model against the oracle's;
with its `true_p_convert_send` / `true_p_convert_none`, the AUC each model's probabilities have against the
true ones (`convert_send_true_auc`: outcome noise removed, on all rows).
Baselines: the T-learner with the fixed penalty (`t_learner`) and with cross-validated ones (`t_learner_cv`).
The popularity rule has no probabilities: it gets the ranking metrics only (AUC of its score, uplift curves).
Plots (reliability, Qini curves) are written as PNG and their paths returned for the Dagster metadata.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import pearsonr, spearmanr

from ml.predictor import metrics as M
from ml.predictor.baselines import RuleBaseline, TLearner
from ml.predictor.features import unit_codes
from ml.predictor.predict import Predictor, load_predictor


@dataclass
class EvalReport:
    """`models[name]` holds flat metrics; intervals as {value, ci_low, ci_high}."""

    models: dict[str, dict[str, Any]]
    plots: list[Path] = field(default_factory=list)
    rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "models": self.models, "plots": [str(p) for p in self.plots]}

    def markdown(self) -> str:
        keys = ["convert_send_auc_ci", "convert_send_auc_minus_t_learner", "convert_send_auc_minus_t_learner_cv", "convert_send_true_auc", "convert_none_auc", "convert_none_true_auc", "convert_send_ece", "qini", "auuc", "uplift_at_10", "uplift_at_30", "true_uplift_pearson", "policy_value_ratio_at_30"]
        lines = ["| metric | " + " | ".join(self.models) + " |", "|---|" + "---|" * len(self.models)]
        for key in keys:
            if not any(key in m for m in self.models.values()):
                continue
            cells = []
            for m in self.models.values():
                v = m.get(key)
                cells.append("—" if v is None else (f"{v['value']:.4f} [{v['ci_low']:.4f}, {v['ci_high']:.4f}]" if isinstance(v, dict) else f"{v:.4f}"))
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def classification_metrics(prefix: str, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    if len(y) == 0:
        return {}
    return {f"{prefix}_auc": M.auc(y, p), f"{prefix}_logloss": M.log_loss(y, p), f"{prefix}_ece": M.expected_calibration_error(y, p)}


def auc_interval(y: np.ndarray, score: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """AUC with its bootstrap interval: with a few dozen conversions an AUC's interval spans about +-0.05
    (bench/predictor_simulator.py), so a point estimate alone ranks models by chance."""
    return M.bootstrap(M.auc, (np.asarray(y, np.float64), np.asarray(score, np.float64)), n_boot, seed).to_dict()


def uplift_metrics(y: np.ndarray, t: np.ndarray, score: np.ndarray, ks: tuple[float, ...], n_boot: int, seed: int) -> dict[str, Any]:
    """Qini, AUUC and uplift@k, each with a bootstrap interval."""
    arrays = (np.asarray(y, np.float64), np.asarray(t, np.float64), np.asarray(score, np.float64))
    out: dict[str, Any] = {
        "qini": M.bootstrap(M.qini_coefficient, arrays, n_boot, seed).to_dict(),
        "auuc": M.bootstrap(M.auuc, arrays, n_boot, seed).to_dict(),
    }
    for k in ks:
        out[f"uplift_at_{round(k * 100)}"] = M.bootstrap(lambda a, b, c, k=k: M.uplift_at_k(a, b, c, k), arrays, n_boot, seed).to_dict()
    return out


def truth_metrics(score: np.ndarray, true_uplift: np.ndarray, ks: tuple[float, ...]) -> dict[str, float]:
    out = {"true_uplift_pearson": float(pearsonr(score, true_uplift)[0]), "true_uplift_spearman": float(spearmanr(score, true_uplift)[0])}
    for k in ks:
        value, oracle = M.top_k_policy_value(score, true_uplift, k)
        out[f"policy_value_at_{round(k * 100)}"] = value
        out[f"oracle_value_at_{round(k * 100)}"] = oracle
        out[f"policy_value_ratio_at_{round(k * 100)}"] = value / oracle if oracle else float("nan")
    return out


def qini_plot(y: np.ndarray, t: np.ndarray, scores: dict[str, np.ndarray], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, score in scores.items():
        x, c = M.qini_curve(y, t, score)
        ax.plot(x / x[-1], c, label=f"{name} (Qini {M.qini_coefficient(y, t, score):.3f})")
    x, c = M.qini_curve(y, t, np.zeros(len(y)))
    ax.plot([0, 1], [0, c[-1]], color="grey", linestyle="--", label="random")
    ax.set_xlabel("share of rows targeted (by predicted uplift)")
    ax.set_ylabel("incremental responders (Qini)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def evaluate_predictor(
    predictor: Predictor,
    df: pl.DataFrame,
    out_dir: Path | str,
    *,
    train_df: pl.DataFrame | None = None,
    rule: RuleBaseline | None = None,
    ks: tuple[float, ...] = (0.1, 0.3),
    n_boot: int = 200,
    seed: int = 0,
    tag: str = "predictor",
) -> EvalReport:
    """Metrics of `predictor` on the labelled rows `df`, beside a T-learner fitted on `train_df` (when given)
    and the popularity rule (when its column exists). Writes PNG plots into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = predictor.spec
    data = predictor.encoder.transform(df, with_labels=True)
    tens = data.tensors
    y_click, y_conv, treated = tens["click"].numpy(), tens["convert"].numpy(), tens["treated"].numpy() > 0.5

    candidates: dict[str, dict[str, np.ndarray]] = {"model": predictor.predict_encoded(data)}
    if train_df is not None:
        train_data = predictor.encoder.transform(train_df, with_labels=True)
        candidates["t_learner"] = TLearner(predictor.encoder).fit(train_data).predict(data)
        # The same two regressions with penalties chosen as the model's wide start chooses its own: what the
        # deep part must beat for its rankings to be worth more than a tuned linear model's.
        candidates["t_learner_cv"] = TLearner(predictor.encoder, l2=None).fit(
            train_data, unit_codes(train_df, spec), seed).predict(data)
    rule = rule or RuleBaseline()
    rule_score = rule.uplift_score(df) if rule.column in df.columns else None

    truth = df["true_uplift"].cast(pl.Float64).to_numpy() if "true_uplift" in df.columns else None
    # The simulator's true P(convert | send) and P(convert | no send) of every row's logged action, sent or
    # not: each model's probabilities ranked against them on all rows (`metrics.expected_auc`).
    true_p = {head: df[f"true_p_{head}"].cast(pl.Float64).to_numpy()
              for head in ("convert_send", "convert_none") if f"true_p_{head}" in df.columns}
    report = EvalReport(models={}, rows=df.height)
    for name, probs in candidates.items():
        m: dict[str, Any] = {}
        if spec.click_label:
            m.update(classification_metrics("click", y_click[treated], probs["click"][treated]))
        m.update(classification_metrics("convert_send", y_conv[treated], probs["convert_send"][treated]))
        if treated.any():
            m["convert_send_auc_ci"] = auc_interval(y_conv[treated], probs["convert_send"][treated], n_boot, seed)
        m.update(classification_metrics("convert_none", y_conv[~treated], probs["convert_none"][~treated]))
        m.update(uplift_metrics(y_conv, treated, probs["uplift"], ks, n_boot, seed))
        if truth is not None:
            m.update(truth_metrics(probs["uplift"], truth, ks))
        for head, p_true in true_p.items():
            m[f"{head}_true_auc"] = M.expected_auc(p_true, probs[head])
        report.models[name] = m
    if treated.any():
        # Paired: both models scored on the same resampled rows, so the interval is of the difference itself
        # (two overlapping marginal intervals say little about which model ranks better).
        for name in candidates.keys() - {"model"}:
            report.models["model"][f"convert_send_auc_minus_{name}"] = M.bootstrap(
                lambda y, a, b: M.auc(y, a) - M.auc(y, b),
                (y_conv[treated], candidates["model"]["convert_send"][treated], candidates[name]["convert_send"][treated]),
                n_boot, seed,
            ).to_dict()
    if rule_score is not None:
        # The rule's score is no probability: only its ranking metrics (AUC, uplift curves) mean anything.
        m = {}
        if treated.any():
            m["convert_send_auc_ci"] = auc_interval(y_conv[treated], rule_score[treated], n_boot, seed)
            m["convert_send_auc"] = m["convert_send_auc_ci"]["value"]
        if (~treated).any():
            m["convert_none_auc"] = M.auc(y_conv[~treated], rule_score[~treated])
        m.update(uplift_metrics(y_conv, treated, rule_score, ks, n_boot, seed))
        if truth is not None:
            m.update(truth_metrics(rule_score, truth, ks))
        for head, p_true in true_p.items():
            m[f"{head}_true_auc"] = M.expected_auc(p_true, rule_score)
        report.models[rule.name] = m

    probs = candidates["model"]
    if treated.any():
        report.plots.append(M.reliability_plot(y_conv[treated], probs["convert_send"][treated], out / f"{tag}_reliability_send.png", "P(convert | send), treated rows"))
    if (~treated).any():
        report.plots.append(M.reliability_plot(y_conv[~treated], probs["convert_none"][~treated], out / f"{tag}_reliability_none.png", "P(convert | no send), untreated rows"))
    scores = {name: p["uplift"] for name, p in candidates.items()}
    if rule_score is not None:
        scores[rule.name] = rule_score
    report.plots.append(qini_plot(y_conv, treated.astype(np.float64), scores, out / f"{tag}_qini.png", "Qini curves"))
    (out / f"{tag}_metrics.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ml.predictor.evaluate", description="Evaluate a saved predictor beside the baselines.")
    p.add_argument("--model", required=True, help="folder written by ml.predictor.train")
    p.add_argument("--data", required=True, help="Parquet file of labelled evaluation rows")
    p.add_argument("--train", help="Parquet file of training rows (fits the T-learner baseline)")
    p.add_argument("--out", required=True, help="folder for metrics JSON and plots")
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    predictor = load_predictor(Path(args.model), args.device)
    train_df = pl.read_parquet(args.train) if args.train else None
    report = evaluate_predictor(predictor, pl.read_parquet(args.data), args.out, train_df=train_df, n_boot=args.bootstrap)
    print(report.markdown())
    print("plots: " + ", ".join(str(p) for p in report.plots))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
