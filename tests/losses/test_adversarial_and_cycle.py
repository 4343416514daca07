import numpy as np
import pytest

from mr2ct.losses import cycle_loss, identity_loss, lsgan_discriminator_loss, lsgan_generator_loss

rng = np.random.default_rng(0)
REAL = rng.normal(size=(3, 4, 4, 1)).astype("float32")
FAKE = rng.normal(size=(3, 4, 4, 1)).astype("float32")


def test_lsgan_generator_loss_per_image():
    expected = ((FAKE - 1) ** 2).reshape(3, -1).mean(axis=1)
    np.testing.assert_allclose(lsgan_generator_loss(FAKE).numpy(), expected, rtol=1e-6)


def test_lsgan_discriminator_loss_per_image():
    expected = 0.5 * (((REAL - 1) ** 2).reshape(3, -1).mean(1) + (FAKE**2).reshape(3, -1).mean(1))
    np.testing.assert_allclose(lsgan_discriminator_loss(REAL, FAKE).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "real, fake, d_loss, g_loss",
    [(1.0, 0.0, 0.0, 1.0), (0.0, 1.0, 1.0, 0.0), (0.5, 0.5, 0.25, 0.25)],
)
def test_lsgan_known_values(real, fake, d_loss, g_loss):
    r = np.full((2, 3, 3, 1), real, "float32")
    f = np.full((2, 3, 3, 1), fake, "float32")
    np.testing.assert_allclose(lsgan_discriminator_loss(r, f).numpy(), d_loss)
    np.testing.assert_allclose(lsgan_generator_loss(f).numpy(), g_loss)


def test_l1_losses():
    expected = np.abs(REAL - FAKE).reshape(3, -1).mean(axis=1)
    np.testing.assert_allclose(cycle_loss(REAL, FAKE).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(identity_loss(REAL, REAL).numpy(), 0.0)
    assert lsgan_generator_loss(FAKE.astype("float16")).dtype == "float32"
