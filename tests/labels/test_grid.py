"""Grid helpers: vorticity on the sphere and periodic connected components."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from climviz.labels._grid import Grid, label_periodic, relative_vorticity
from tests.labels.conftest import grid

R_M = 6371.0e3


def test_solid_body_rotation_has_the_closed_form_vorticity():
    # u = U0 cos(lat), v = 0 is solid-body rotation: zeta = 2 U0 sin(lat) / R exactly
    lat, lon = grid(2.0, 2.5)
    u0 = 20.0
    u = np.broadcast_to(u0 * np.cos(np.deg2rad(lat))[:, None], (lat.size, lon.size))
    zeta = relative_vorticity(u[None], np.zeros_like(u)[None], Grid.from_coords(lat, lon))[0]
    expected = 2 * u0 * np.sin(np.deg2rad(lat)) / R_M
    inner = slice(1, -1)  # one-sided differences at the first and last rows
    np.testing.assert_allclose(zeta[inner], np.broadcast_to(expected[inner, None], zeta[inner].shape),
                               rtol=2e-3, atol=1e-9)


def test_meridional_wind_wave_vorticity_is_periodic_in_longitude():
    # v = V0 sin(lambda): zeta = V0 cos(lambda) / (R cos(lat)); centred differences shrink it by
    # sin(dl)/dl, which we include; the columns next to the 0/360 seam must be as good as the rest
    lat, lon = grid(2.0, 2.5)
    lam = np.deg2rad(lon)
    v = np.broadcast_to(10.0 * np.sin(lam)[None, :], (lat.size, lon.size))
    zeta = relative_vorticity(np.zeros_like(v)[None], v[None], Grid.from_coords(lat, lon))[0]
    dl = np.deg2rad(2.5)
    expected = 10.0 * np.cos(lam)[None, :] / (R_M * np.cos(np.deg2rad(lat))[:, None]) * np.sin(dl) / dl
    rows = np.abs(lat) < 80
    np.testing.assert_allclose(zeta[rows], expected[rows], rtol=1e-4, atol=1e-12)


def test_components_join_across_the_seam_and_not_across_time():
    mask = np.zeros((2, 6, 10), dtype=bool)
    mask[0, 2:4, :2] = True  # west edge ...
    mask[0, 3:5, -2:] = True  # ... and east edge touch across the seam: one component
    mask[0, 0, 5] = True  # a separate cell
    mask[1, 2:4, :2] = True  # the same cells one step later: another component
    lab, n = label_periodic(mask, periodic=True)
    assert n == 3
    assert lab[0, 2, 0] == lab[0, 4, -1] != 0
    assert lab[0, 0, 5] not in (0, lab[0, 2, 0])
    assert lab[1, 2, 0] not in (0, lab[0, 2, 0])
    # without periodicity scipy's own count per step is the reference
    lab2, n2 = label_periodic(mask, periodic=False)
    assert n2 == ndimage.label(mask[0], structure=np.ones((3, 3)))[1] + ndimage.label(mask[1])[1]


def test_diagonal_contact_across_the_seam_counts():
    mask = np.zeros((1, 5, 8), dtype=bool)
    mask[0, 1, 0] = True
    mask[0, 2, -1] = True  # diagonal neighbour across the seam (8-connectivity)
    mask[0, 4, 0] = True  # not touching
    lab, n = label_periodic(mask)
    assert n == 2
    assert lab[0, 1, 0] == lab[0, 2, -1]


def test_components_are_numbered_across_time_steps():
    # label_periodic is climviz.events.label with one numbering over the whole array: the ids
    # are 1..n without gaps, no id is shared by two steps, and each step's partition is the
    # one scipy finds (no component touches the seam here, so periodicity changes nothing).
    rng = np.random.default_rng(0)
    mask = rng.random((3, 40, 60)) > 0.55
    mask[..., 0] = mask[..., -1] = False
    lab, n = label_periodic(mask)
    assert lab.dtype == np.int32
    counts = [ndimage.label(m, structure=np.ones((3, 3)))[1] for m in mask]
    assert n == sum(counts)
    assert np.array_equal(np.unique(lab), np.arange(n + 1))
    start = 0
    for k, m in enumerate(mask):
        ref, _ = ndimage.label(m, structure=np.ones((3, 3)))
        ids = np.unique(lab[k][m])
        assert ids.min() == start + 1 and ids.max() == start + counts[k]
        pairs = np.unique(np.stack([lab[k][m], ref[m]], axis=1), axis=0)
        assert len(pairs) == counts[k]  # the same partition as scipy
        start += counts[k]
