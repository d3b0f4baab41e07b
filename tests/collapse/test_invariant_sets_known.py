"""Invariant-set detection on hand cases with answers computed by hand: unit vectors at known angles, norms at
exactly the vanishing threshold, and the groups' partition of the neurons."""

import numpy as np

from collapse import invariant_sets as inv


def _unit(degrees):
    a = np.radians(np.asarray(degrees, float))
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def test_relative_distance_of_unit_vectors_is_two_minus_two_cosine():
    # 2 |u - v|^2 / (|u|^2 + |v|^2) = |u - v|^2 = 2 - 2 cos(angle) for unit vectors
    angles = [0.0, 15.0, 30.0, 90.0, 180.0]
    d = inv.relative_distances(_unit(angles))
    expected = 2.0 - 2.0 * np.cos(np.radians(np.subtract.outer(angles, angles)))
    np.testing.assert_allclose(d, expected, atol=1e-12)
    # different norms: u = (1, 0), v = (0, 3): 2 * 10 / 10 = 2 (orthogonal); u and 2u: 2 * 1 / 5
    np.testing.assert_allclose(inv.relative_distances(np.array([[1.0, 0.0], [0.0, 3.0]]))[0, 1], 2.0)
    np.testing.assert_allclose(inv.relative_distances(np.array([[1.0, 0.0], [2.0, 0.0]]))[0, 1], 0.4)


def test_groups_partition_the_neurons_at_0_30_15_degrees():
    # 15 degrees apart: 2 - 2 cos 15 = 0.068 < 0.1 (identical); 30 degrees: 0.268 (not). The leader at 0 takes 15;
    # 30 is then alone (15 is already assigned, although it is within the threshold of 30 as well).
    v = _unit([0.0, 30.0, 15.0])
    groups = inv.identical_groups(v)
    assert groups == [[0, 2], [1]]
    members = sorted(i for g in groups for i in g)
    assert members == [0, 1, 2]  # every neuron in exactly one group
    layer = inv.analyse_layer(v)
    assert layer.independent == 2
    assert layer.fraction == 2 / 3 and layer.merged_fraction == 1 / 3 and layer.vanishing_fraction == 0.0


def test_chain_of_near_neighbours_does_not_merge_transitively():
    # 0, 15, 30, 45 degrees: each neighbour within the threshold, 0 and 30 not. Leader clustering: {0, 15}, {30, 45}.
    groups = inv.identical_groups(_unit([0.0, 15.0, 30.0, 45.0]))
    assert groups == [[0, 1], [2, 3]]


def test_vanishing_is_strictly_below_a_tenth_of_the_largest_norm():
    # norms 1, 0.1 (exactly the threshold: not vanishing), 0.0999 and 0 (vanishing)
    v = np.array([[1.0, 0.0], [0.0, 0.1], [0.0999, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(inv.vanishing_mask(v), [False, False, True, True])
    layer = inv.analyse_layer(v)
    assert layer.vanishing_fraction == 0.5
    assert all(2 not in g and 3 not in g for g in layer.groups)  # vanishing neurons are in no group
    assert layer.fraction + layer.vanishing_fraction + layer.merged_fraction == 1.0


def test_extraction_of_a_hand_built_network_sums_the_outgoing_weights():
    # hidden neurons 0 and 1 identical (incoming (1, 2), bias 0.5, outgoing 3 each), neuron 2 vanishing:
    # the collapsed network has one hidden neuron with incoming (1, 2), bias 0.5 and outgoing 3 + 3 = 6.
    f32 = np.float32
    w1 = np.array([[1.0, 1.0, 0.0], [2.0, 2.0, 0.0]], f32)
    b1 = np.array([0.5, 0.5, 0.0], f32)
    w2 = np.array([[3.0], [3.0], [0.0]], f32)
    layers = [{"w": w1, "b": b1}, {"w": w2, "b": np.array([0.25], f32)}]
    small, groups = inv.extract_subnetwork(layers)
    assert groups == [[[0, 1]]]
    np.testing.assert_allclose(np.asarray(small[0]["w"]), [[1.0], [2.0]])
    np.testing.assert_allclose(np.asarray(small[0]["b"]), [0.5])
    np.testing.assert_allclose(np.asarray(small[1]["w"]), [[6.0]])
    np.testing.assert_allclose(np.asarray(small[1]["b"]), [0.25])
