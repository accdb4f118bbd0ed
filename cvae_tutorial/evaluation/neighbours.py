"""Nearest-neighbour estimates of where two point sets (codes, or image features) lie, without
fitting a Gaussian to either (chapter 6).

Each point of a reference set gets a ball reaching its k-th nearest neighbour within its own set;
the union of the balls estimates the set's support (its "manifold"):

- :func:`precision_recall` (Kynkäänniemi et al. 2019): precision, the fraction of candidates in
  the reference's balls (are the samples realistic?); recall, the fraction of the reference in
  the candidates' balls (is the real variety reached?). Mode collapse: high precision, low recall.
- :func:`within_label_precision_recall`: the same within each label vector, the diversity of
  the samples drawn for one y;
- :func:`coverage` (Naeem et al. 2020): the fraction of reference points whose own ball holds a
  candidate; robust to the candidates' outliers, and low where the candidates leave a region of
  the reference empty.

A Fréchet distance compares means and covariances only, so a ring and a Gaussian with the same
two moments are at distance 0; these see the ring's empty centre. Inputs are arrays or tensors
[N, D]; distances in float64, in row chunks so that 10,000 points fit in memory.
"""
from __future__ import annotations

import torch
from torch import Tensor

CHUNK = 1024  # rows of the distance matrix at a time


def _points(points, name: str) -> Tensor:
    points = torch.as_tensor(points).detach().cpu().double()
    if points.ndim != 2 or not len(points):
        raise ValueError(f"{name} must be points [N >= 1, D], got {tuple(points.shape)}")
    if not torch.isfinite(points).all():
        raise ValueError(f"{name} hold NaN or Inf; check the model or the features")
    return points


def knn_radii(points, k: int) -> Tensor:
    """The distance of each point [N] to its k-th nearest neighbour in ``points``, itself not
    counted."""
    points = _points(points, "points")
    if not 1 <= k < len(points):
        raise ValueError(f"k={k} needs at least k + 1 = {k + 1} points, got {len(points)}")
    radii = []
    for start in range(0, len(points), CHUNK):
        distances = torch.cdist(points[start:start + CHUNK], points)
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # the 1st is the point itself
    return torch.cat(radii)


def _inside(balls: Tensor, radii: Tensor, points: Tensor) -> Tensor:
    """[M, N] as rows of ``points``: True where the point lies in ball n (centre, radius)."""
    return torch.cat([torch.cdist(points[start:start + CHUNK], balls) <= radii
                      for start in range(0, len(points), CHUNK)])


def precision_recall(reference, candidates, k: int = 3) -> tuple:
    """(precision, recall) of ``candidates`` [M, D] against ``reference`` [N, D] (Kynkäänniemi
    et al. 2019, k = 3 as there): precision, the fraction of candidates inside the union of the
    reference's k-NN balls; recall, the fraction of the reference inside the candidates'."""
    reference, candidates = _points(reference, "reference"), _points(candidates, "candidates")
    precision = _inside(reference, knn_radii(reference, k), candidates).any(1)
    recall = _inside(candidates, knn_radii(candidates, k), reference).any(1)
    return precision.double().mean().item(), recall.double().mean().item()


def coverage(reference, candidates, k: int = 5) -> float:
    """The fraction of ``reference`` points [N, D] whose k-NN ball (within the reference) holds
    at least one of ``candidates`` [M, D] (Naeem et al. 2020, k = 5 as there). Two samples of
    one distribution of equal size score about 1 − 2^−k; a region of the reference that the
    candidates leave empty lowers it."""
    reference, candidates = _points(reference, "reference"), _points(candidates, "candidates")
    return _inside(reference, knn_radii(reference, k), candidates).any(0).double().mean().item()


def within_label_precision_recall(reference, reference_labels, candidates, candidate_labels,
                                  k: int = 3) -> dict:
    """:func:`precision_recall` within each label vector: samples drawn for y against the real
    images labelled y, for every y with more than k of each. "On-label but alike" — samples that
    show the attributes asked for and little else — is high precision and low recall here,
    whatever the pooled scores say.

    Returns {"precision", "recall"} (averages over the label vectors, weighted by candidates and
    by reference rows), "label_sets" (how many were scored) and "rows" (the reference rows in
    them). Features [N, D] and [M, D], labels [N, A] and [M, A].
    """
    reference, candidates = _points(reference, "reference"), _points(candidates, "candidates")
    reference_labels = torch.as_tensor(reference_labels).cpu()
    candidate_labels = torch.as_tensor(candidate_labels).cpu()
    if len(reference_labels) != len(reference) or len(candidate_labels) != len(candidates):
        raise ValueError(f"one label row per point: {len(reference)} reference points with "
                         f"{len(reference_labels)} label rows, {len(candidates)} candidates with "
                         f"{len(candidate_labels)}")
    precision = recall = 0.0
    scored = candidate_rows = reference_rows = 0
    for y in torch.unique(reference_labels, dim=0):
        real = reference[(reference_labels == y).all(1)]
        fake = candidates[(candidate_labels == y).all(1)]
        if len(real) <= k or len(fake) <= k:
            continue
        p, r = precision_recall(real, fake, k)
        precision, recall = precision + p * len(fake), recall + r * len(real)
        scored, candidate_rows, reference_rows = (scored + 1, candidate_rows + len(fake),
                                                  reference_rows + len(real))
    if not scored:
        raise ValueError(f"no label vector has more than k={k} reference points and candidates; "
                         f"draw more samples per label set or use fewer attributes")
    return {"precision": precision / candidate_rows, "recall": recall / reference_rows,
            "label_sets": scored, "rows": reference_rows}
