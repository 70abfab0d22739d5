"""Is model B derived from model A? The test on two provenance fingerprints.

Two tests, one per part of the fingerprint (hnn.provenance.fingerprint), each
with a p-value under "B's weights are independent of A's":

*Positional.* Layers of A and B are paired by their shapes in graph order (a
longest common subsequence, so a block gained or lost shifts nothing else); each
pair's sketches agree in ``h`` of SKETCH_BITS signs. Independent weights agree in
half, about binomially; the pair's z is ``(h - bits/2)`` over its spread, and the
layers' z's add up as Stouffer's. The binomial's spread is widened by what
the cosine of two independent layers varies over n sketched values (a
benchmark of independent pairs measured the plain binomial too narrow for small
layers). Nothing about the pairing looks at the sketches.

*Anchored.* Each Gram layer of the model with fewer is set against the other's
Gram layers at about the same relative depth; its best Pearson correlation is
that layer's evidence and the *score* is their mean. The null comes from B: its
anchor coordinates, permuted at random (``PERMUTATIONS`` times), keep
everything about B but its alignment with A's anchor; the z is the observed
score in the permuted scores' standard deviations.

The evidence is the stronger test's, with its p-value doubled (Bonferroni over
the two). benchmarks/provenance.py measures both on copies and independents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from hnn.provenance.fingerprint import ANCHOR_DIMS, FEATURES, POSITIONS, SKETCH_BITS, Fingerprint

# The z (the stronger test's) at or above which B is called *derived* from A: a p-value near 1e-15, so that
# across an index of a million entries a chance "derived" stays unlikely; copies score in the tens.
DERIVED_Z = 8.0
PERMUTATIONS = 48
PERMUTATION_SEED = 0
# A Gram layer is compared with the other model's within this share of the depth (and at least a layer).
DEPTH_WINDOW = 0.12
# A layer whose evidence is at least this is reported as matched (a Gram correlation, or a positional
# sketch's estimated cosine); the tests use every layer.
LAYER_MATCH = 0.5
# Two tensors of one bare file whose sketches agree this many spreads beyond chance are one tensor to the test.
ALIKE_SPREADS = 5.0
_TRIU = np.triu_indices(ANCHOR_DIMS, k=1)


@dataclass(frozen=True)
class Test:
    """One test's result: a similarity (-1..1), its z against the null, the layers it used and matched."""

    similarity: float
    z: float
    layers_compared: int
    layers_matched: int

    def to_dict(self) -> dict:
        return {"similarity": round(self.similarity, 4), "z": round(self.z, 2),
                "layers_compared": self.layers_compared, "layers_matched": self.layers_matched}


@dataclass(frozen=True)
class Evidence:
    positional: Test
    anchored: Test

    @property
    def z(self) -> float:
        return max(self.positional.z, self.anchored.z)

    @property
    def p_value(self) -> float:
        return min(1.0, 2.0 * normal_tail(self.z))

    @property
    def log10_p(self) -> float:
        """log10 of the p-value: a copy's p is below what a float holds (z of 40 is 1e-350)."""
        return min(0.0, (math.log(2.0) + log_normal_tail(self.z)) / math.log(10.0)) + 0.0  # never -0.0

    @property
    def derived(self) -> bool:
        return self.z >= DERIVED_Z

    @property
    def strongest(self) -> Test:
        return self.positional if self.positional.z >= self.anchored.z else self.anchored

    def to_dict(self) -> dict:
        return {"derived": self.derived, "p_value": float(f"{self.p_value:.3g}"), "log10_p": round(self.log10_p, 1),
                "z": round(self.z, 2),
                "positional": self.positional.to_dict(), "anchored": self.anchored.to_dict()}


def normal_tail(z: float) -> float:
    """P(N(0, 1) > z). The standard library's erfc, not scipy: importing scipy.stats costs a `hnn check`
    about half a second."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def log_normal_tail(z: float) -> float:
    """log P(N(0, 1) > z), also where the tail itself underflows (z above about 37): the asymptotic series."""
    if z < 30.0:
        return math.log(max(normal_tail(z), 1e-300))
    return -z * z / 2.0 - math.log(z * math.sqrt(2.0 * math.pi)) + math.log1p(-1.0 / z**2 + 3.0 / z**4)


def compare(first: Fingerprint, second: Fingerprint) -> Evidence:
    """The evidence that one of two models derives from the other (symmetric in the two)."""
    return Query(first).against(second)


class Query:
    """One model's fingerprint prepared for testing against many (an index's candidates): its Grams
    standardised and renumbered once, not once per pair. ``Query(a).against(b)`` is ``compare(a, b)``."""

    def __init__(self, fingerprint: Fingerprint):
        self.fingerprint = fingerprint
        self.grams = _standardized(fingerprint.grams)
        self._renumbered: dict[bool, np.ndarray] = {}

    def against(self, other: Fingerprint) -> Evidence:
        return Evidence(positional=positional_test(self.fingerprint, other), anchored=self._anchored(other))

    def renumbered(self, inverse: bool) -> np.ndarray:
        """(PERMUTATIONS, layers, FEATURES): these Grams under each anchor renumbering (or its inverse)."""
        if inverse not in self._renumbered:
            maps = _inverse_permutation_maps() if inverse else _permutation_maps()
            self._renumbered[inverse] = np.ascontiguousarray(self.grams[:, maps].transpose(1, 0, 2))
        return self._renumbered[inverse]

    def _anchored(self, other: Fingerprint) -> Test:
        mine, theirs = self.grams, _standardized(other.grams)
        if not mine.shape[0] or not theirs.shape[0]:
            return Test(0.0, 0.0, 0, 0)
        # The test runs over the model with fewer layers (a) against the other's (b), and its null renumbers
        # b's anchor. Renumbering b's features is renumbering a's by the inverse (a product of two rows is
        # a sum over features, in any order), so whichever of the two the query is, only its own Grams,
        # renumbered once per query, enter the null.
        if mine.shape[0] <= theirs.shape[0]:
            a, b = mine, theirs
            renumbered = self.renumbered(inverse=True)
            products = (renumbered.reshape(-1, FEATURES) @ b.T).reshape(PERMUTATIONS, a.shape[0], b.shape[0])
        else:
            a, b = theirs, mine
            products = np.matmul(a, self.renumbered(inverse=False).transpose(0, 2, 1))
        return _anchored_from(a, b, products)


def positional_test(first: Fingerprint, second: Fingerprint) -> Test:
    if not (first.ordered and second.ordered):
        return unordered_positional_test(first, second)
    pairs = shape_pairs(first.shapes, second.shapes)
    if not pairs:
        return Test(0.0, 0.0, 0, 0)
    a = first.sketches[[i for i, _ in pairs]]
    b = second.sketches[[j for _, j in pairs]]
    differing = np.bitwise_count(np.bitwise_xor(a, b)).sum(axis=1, dtype=np.int64)
    agreeing = SKETCH_BITS - differing
    # Two independent layers are orthogonal only on average: their cosine over n sketched values
    # varies by 1/sqrt(n), and the agreement with it, beyond the binomial's bits/4 by bits^2/(pi^2 n).
    sketched = np.array([min(POSITIONS, math.prod(first.shapes[i])) for i, _ in pairs], dtype=np.float64)
    spread = np.sqrt(SKETCH_BITS / 4 + SKETCH_BITS**2 / (np.pi**2 * sketched))
    layer_z = (agreeing - SKETCH_BITS / 2) / spread
    cosines = np.cos(np.pi * differing / SKETCH_BITS)
    return Test(similarity=float(cosines.mean()), z=float(layer_z.sum() / np.sqrt(len(pairs))),
                layers_compared=len(pairs), layers_matched=int((cosines >= LAYER_MATCH).sum()))


def unordered_positional_test(first: Fingerprint, second: Fingerprint) -> Test:
    """The positional test where one side is bare weights (hnn.provenance.weights_only): no order to pair
    layers by, so each tensor of that side is set against every layer of the other side with its shape
    (in either of its layouts), and its best agreement is its evidence, as a p-value corrected for the
    k candidates it was chosen from (the best of k independent agreements: 1 - (1 - p)^k). The tensors'
    z's add up as Stouffer's. Of two bare sides, the one with fewer tensors asks."""
    if first.ordered or (not second.ordered and _tensor_count(second) < _tensor_count(first)):
        first, second = second, first
    rows_of_shape: dict[tuple, list[int]] = {}
    for row, shape in enumerate(second.shapes):
        rows_of_shape.setdefault(tuple(shape), []).append(row)
    candidates = {shape: second.sketches[rows] for shape, rows in rows_of_shape.items()}
    tensor_z, cosines = [], []
    for rows in _independent_tensors(first):
        best, tried, best_shape = SKETCH_BITS + 1, 0, None
        for row in rows:
            theirs = candidates.get(tuple(first.shapes[row]))
            if theirs is None:
                continue
            differing = _nearest(theirs, first.sketches[row])
            tried += len(theirs)
            if differing < best:
                best, best_shape = differing, first.shapes[row]
        if not tried:
            continue
        z = (SKETCH_BITS / 2 - best) / _spread(best_shape)
        tensor_z.append(_best_of(min(z, 37.0), tried))
        cosines.append(math.cos(math.pi * best / SKETCH_BITS))
    if not tensor_z:
        return Test(0.0, 0.0, 0, 0)
    return Test(similarity=float(np.mean(cosines)), z=float(sum(tensor_z) / math.sqrt(len(tensor_z))),
                layers_compared=len(tensor_z), layers_matched=int(sum(c >= LAYER_MATCH for c in cosines)))


def _independent_tensors(fingerprint: Fingerprint) -> list[np.ndarray]:
    """The sketch rows of each tensor of an unordered fingerprint, less the tensors whose sketch is not
    independent of an earlier tensor's of its shape (agreeing beyond chance by ALIKE_SPREADS: a tensor
    stored twice, experts copied from one). Each copy would find the same best layer on the other
    side, and their z's would add up, against independent weights, to any z at all."""
    kept: dict[tuple, list[np.ndarray]] = {}
    found = []
    for rows in np.split(np.arange(len(fingerprint.shapes)), np.flatnonzero(np.diff(fingerprint.tensors)) + 1):
        shapes = [tuple(fingerprint.shapes[row]) for row in rows]
        if any(kept.get(shape) and _nearest(np.stack(kept[shape]), fingerprint.sketches[row])
               < SKETCH_BITS / 2 - ALIKE_SPREADS * _spread(shape) for row, shape in zip(rows, shapes)):
            continue
        found.append(rows)
        for row, shape in zip(rows, shapes):
            kept.setdefault(shape, []).append(fingerprint.sketches[row])
    return found


def _nearest(sketches: np.ndarray, sketch: np.ndarray) -> int:
    """The fewest bits in which ``sketch`` differs from any of ``sketches``."""
    return int(np.bitwise_count(np.bitwise_xor(sketches, sketch)).sum(axis=1).min())


def _spread(shape) -> float:
    """The standard deviation of two independent layers' sign agreement (positional_test says why)."""
    sketched = min(POSITIONS, math.prod(shape))
    return math.sqrt(SKETCH_BITS / 4 + SKETCH_BITS**2 / (math.pi**2 * sketched))


def _tensor_count(fingerprint: Fingerprint) -> int:
    return len(np.unique(fingerprint.tensors))


def _best_of(z: float, count: int) -> float:
    """The z of the best of ``count`` independent tries whose best scored ``z``: its p-value is
    1 - (1 - p)^count, back on the normal scale (so a chance best of many is no evidence)."""
    tail = normal_tail(z)
    p = 1.0 if tail >= 1.0 else -math.expm1(count * math.log1p(-tail))
    return -NormalDist().inv_cdf(min(max(p, 1e-300), 1.0 - 1e-16))


def shape_pairs(first: tuple, second: tuple) -> list[tuple[int, int]]:
    """Layer pairs (index in first, index in second) with equal shapes, in order: the longest common subsequence."""
    matcher = SequenceMatcher(None, list(first), list(second), autojunk=False)
    return [(block.a + k, block.b + k) for block in matcher.get_matching_blocks() for k in range(block.size)]


def anchored_test(first: Fingerprint, second: Fingerprint) -> Test:
    return Query(first)._anchored(second)


def _anchored_from(a: np.ndarray, b: np.ndarray, products: np.ndarray) -> Test:
    """The anchored test of a's standardised Gram rows against b's (a has no more layers than b), given
    ``products`` (PERMUTATIONS, layers of a, layers of b): every pair's correlation under each renumbering.
    Renumbering the anchor coordinates only reorders a Gram's off-diagonal entries, so standardised rows,
    reordered, are the standardised rows of the renumbered Grams."""
    window = _window(a.shape[0], b.shape[0])
    best = _best_per_layer(a, b, window)
    score = float(best.mean())
    null = np.where(window, products, -1.0).max(axis=2).mean(axis=1)
    z = (score - float(null.mean())) / max(float(null.std()), 1e-6)
    return Test(similarity=score, z=z, layers_compared=int(best.size), layers_matched=int((best >= LAYER_MATCH).sum()))


def _standardized(layers: np.ndarray) -> np.ndarray:
    centred = layers - layers.mean(axis=-1, keepdims=True)
    norms = np.linalg.norm(centred, axis=-1, keepdims=True)
    return centred / np.where(norms == 0, 1.0, norms)


@lru_cache(maxsize=1)
def _permutation_maps() -> np.ndarray:
    """(PERMUTATIONS, FEATURES): for fixed random renumberings of the anchor coordinates, where each
    upper-triangle entry of the renumbered Gram comes from in the original's (the same for every pair,
    so a pair's p-value does not depend on when it was computed)."""
    position = np.zeros((ANCHOR_DIMS, ANCHOR_DIMS), dtype=np.int64)
    position[_TRIU] = np.arange(len(_TRIU[0]))
    position = position + position.T
    rng = np.random.default_rng(PERMUTATION_SEED)
    orders = [rng.permutation(ANCHOR_DIMS) for _ in range(PERMUTATIONS)]
    return np.stack([position[order[_TRIU[0]], order[_TRIU[1]]] for order in orders])


@lru_cache(maxsize=1)
def _inverse_permutation_maps() -> np.ndarray:
    """(PERMUTATIONS, FEATURES): each row of :func:`_permutation_maps` inverted."""
    maps = _permutation_maps()
    inverse = np.empty_like(maps)
    np.put_along_axis(inverse, maps, np.arange(maps.shape[1])[None, :].repeat(len(maps), axis=0), axis=1)
    return inverse


def _window(rows: int, columns: int) -> np.ndarray:
    """Which layer pairs are compared: those at about the same relative depth."""
    depth_a = np.arange(rows) / max(rows - 1, 1)
    depth_b = np.arange(columns) / max(columns - 1, 1)
    reach = max(DEPTH_WINDOW, 1.0 / max(columns - 1, 1))
    return np.abs(depth_a[:, None] - depth_b[None, :]) <= reach + 1e-9


def _best_per_layer(a: np.ndarray, b: np.ndarray, window: np.ndarray) -> np.ndarray:
    return np.where(window, a @ b.T, -1.0).max(axis=1)
